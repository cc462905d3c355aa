"""ETSI GS QKD 014 (the REST key delivery API toward applications), independent of MPSS.

``model`` (requests, answers, limits and their JSON), ``backend`` (the :class:`KeyBackend`
protocol: where a server's keys come from), ``server`` (the aiohttp application),
``client`` (an async client, also how a node fetches QKD link keys from its KMEs) and
``kme_sim`` (a KME simulator: one backend that makes matching keys for both ends of a
link). See ``docs/etsi014.md``.
"""
