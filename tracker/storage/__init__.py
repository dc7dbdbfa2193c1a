"""The durable outbox: points, heart rate and sampler state on disk until the server has them."""
