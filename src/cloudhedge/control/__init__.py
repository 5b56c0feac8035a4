"""The control plane behind ``cloudhedge up``: workload specs, placement and the reconciler.

``specs`` loads ``job.yaml`` and ``service.yaml`` (validated like the fleet spec, with
file:line:column errors); ``placement`` decides where a job or a replica runs now, with
a filter -> score -> select pipeline that records every rejection and score; the
providers, the store and the reconciler that drive the runtime live next to them.
"""
