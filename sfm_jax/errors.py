"""The errors that mean "the user must change something": the entry points print their message
as one `error:` line and exit with status 2 (sfm_jax.cli.report_user_errors). Any other
exception is a bug and keeps its traceback."""


class DataError(ValueError):
  """A problem with the user's data or data settings."""


class TrainingError(RuntimeError):
  """Training cannot go on (e.g. the loss diverged); the message says what to change."""


class ConfigError(ValueError):
  """A config field, flag or path the run cannot use; the message names the field and the fix."""


class CheckpointError(RuntimeError):
  """The workdir's checkpoints cannot be used: another run's, or none readable."""
