"""A ride as pure logic: the sampler (Fix → Point) and the activity state machine. No I/O."""
