//! Modbus TCP (and RTU over TCP): read requests, MBAP framing, response
//! decoding into samples, and the request planner.
