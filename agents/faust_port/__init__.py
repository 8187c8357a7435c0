"""The one place that reaches into faust, mode, aiokafka (or another library) beyond their
public API."""
