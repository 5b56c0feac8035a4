"""Fleet spec loading and validation: YAML -> core models, with positions for errors."""
