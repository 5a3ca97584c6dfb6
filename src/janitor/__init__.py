"""The janitor: heals executions of the locking state machine that end badly."""
