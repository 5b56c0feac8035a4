"""Fleet spec loading and validation: YAML -> core models, with positions for errors.

    load_spec(path)        -> (FleetSpec, SourceMap)   parse + validate (shape, types)
    resolve(spec, src, c)  -> Fleet                    cross references, catalog, series
    load_fleet(path)       -> Fleet                    both, with the built-in catalog

Every problem raises one :class:`cloudhedge.core.errors.SpecError` listing all issues,
each located (file:line:column) with its field path and, for a misspelled name,
the closest valid one.
"""

from cloudhedge.spec.loader import load_spec, load_spec_text
from cloudhedge.spec.resolve import load_fleet, resolve
from cloudhedge.spec.source import SourceMap

__all__ = ["SourceMap", "load_fleet", "load_spec", "load_spec_text", "resolve"]
