"""Wire and object types for kruisebus.

Everything that crosses a process boundary (a NATS message, a Kubernetes object we decode) is a
msgspec Struct defined here, so that every service, the CLI and the docs share one definition. This
package does no I/O and reads no clock: it is safe to import from the pure planner.
"""
