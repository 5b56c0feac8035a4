"""Provider adapters: one small interface, typed errors with failover scope, capabilities.

``base`` is the contract (read its docstring first); ``clock`` the injected clock;
``emulated`` every provider of a fleet with fault injection; ``local`` this machine.
Cloud adapters (aws, ...) import their SDK lazily. How to write one: docs/providers.md.
``aws`` (``AwsProvider``) imports boto3 only when an adapter first calls EC2, so
importing this package never imports boto3.
"""

from cloudhedge.control.providers.aws import AwsProvider
from cloudhedge.control.providers.base import (
    Capabilities,
    CapacityUnavailable,
    HealthSignal,
    Instance,
    InstanceState,
    InvalidRequest,
    LaunchRequest,
    Located,
    NotFound,
    Offer,
    PermissionDenied,
    Provider,
    ProviderError,
    QuotaExceeded,
    Scope,
    ScopeKind,
    SignalKind,
    Transient,
)
from cloudhedge.control.providers.clock import Clock, ManualClock, SystemClock
from cloudhedge.control.providers.emulated import EmulatedCloud
from cloudhedge.control.providers.local import LocalProvider

__all__ = [
    "AwsProvider",
    "Capabilities",
    "CapacityUnavailable",
    "Clock",
    "EmulatedCloud",
    "HealthSignal",
    "Instance",
    "InstanceState",
    "InvalidRequest",
    "LaunchRequest",
    "LocalProvider",
    "Located",
    "ManualClock",
    "NotFound",
    "Offer",
    "PermissionDenied",
    "Provider",
    "ProviderError",
    "QuotaExceeded",
    "Scope",
    "ScopeKind",
    "SignalKind",
    "SystemClock",
    "Transient",
]
