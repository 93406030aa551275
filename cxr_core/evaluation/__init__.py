"""How a model does: ``eval_sets`` (the validation split rebuilt from a sidecar),
``score_cache``, ``stress`` and ``suite_threshold`` (the corruption suite and the rules on it),
``model_card`` and ``card_sections``, ``model_compare``, ``site_fit`` and ``site_calibrate``
(fitting to a site) and ``faithfulness`` (deletion and insertion curves). May import
``inference`` and the layers below it.
"""
