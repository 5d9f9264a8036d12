//! The simulated Modbus TCP farm: deterministic, verifiable register values,
//! used by `millrace-loadgen serve`, `millrace demo` and the tests.
