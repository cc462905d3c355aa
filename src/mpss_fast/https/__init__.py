"""Mutual-TLS HTTP plumbing shared by every server and client of the project.

``tls`` (contexts, separate CAs per role), ``identity`` (the caller's one certificate CN),
``jsonbody`` (request bodies: malformed is 400, never 500), ``server`` (errors as JSON,
start and stop, ``HOST:PORT``) and ``stopping`` (run until SIGTERM/SIGINT). No knowledge of
keys or of MPSS here.
"""
