"""Tables, queries and migrations: the only part of Passgate that talks SQL."""
