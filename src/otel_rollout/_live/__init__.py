"""The recording API: public handle interfaces, their recording and no-op implementations.

The interfaces (:mod:`._handles`) know neither implementation; importing this package binds
them: :mod:`._recording` for rollouts that record, :mod:`._noop` for the rest. Python
imports a package before any of its modules, so every use of a handle sees them bound.
"""

from otel_rollout._live import _handles, _noop, _recording

_handles.bind(
    _handles.Implementations(start_root=_recording.start_root, disabled_thread=_noop.THREAD)
)
