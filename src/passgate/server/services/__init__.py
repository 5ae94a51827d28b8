"""The domain: tenants, users, actions and tokens. No HTTP types in here; errors are
`passgate.server.services.errors.PassgateError` subclasses, rendered once by the app."""
