"""The OpenAI Agents SDK integration: its tracing processor and its OpenTelemetry instrumentor.

Public as :mod:`otel_rollout.openai_agents`; the instrumentor module imports without the SDK.
"""
