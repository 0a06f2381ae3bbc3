"""The checks of ``python -m deploy.check``, one module per target: ``dockerfile``,
``compose`` (and ``compose_apps``), ``kubernetes`` (and ``kubernetes_pods``), ``observability``
(alert rules and dashboards); ``variables``
holds the environment rules they share, ``project`` the topic list, ``common`` the rest."""
