"""cloudhedge: the compute supply chain for AI.

Plan, stress, run and route AI workloads across clouds and accelerator families.
The layers (see docs/architecture.md): ``core`` (pure domain), ``catalog`` (facts),
``spec`` (fleet spec YAML -> core models), ``planning`` (the optimizer), ``cli``.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
