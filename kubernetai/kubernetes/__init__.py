"""A kubernetai stanza: connection, watches, indexes, names and records of one cluster."""
