//! OPC UA (issue #17) through the async-opcua stack: its encoding, secure
//! channel, session, subscriptions and reconnects, kept behind this module.
//!
//! Why not the protocol seam (protocol/session.rs): that seam is for
//! sans-IO byte protocols whose frames millrace decodes in place. OPC UA's
//! secure channel (chunking, signing, encryption), session keep-alive and
//! Publish loop are what the stack is for, and the stack owns its sockets.
//! So an OPC UA device gets its own reader thread (reader.rs) running the
//! stack on a current-thread tokio runtime, and that thread writes samples
//! into a ring of its own, which the WAL writer drains with the socket
//! readers' rings: the same ring, WAL and delivery path, the same sample
//! format, the same rule that a full ring stalls the reader rather than
//! dropping a value.
//!
//! What it costs: the stack decodes each notification into its own heap
//! values (a `DataValue` with a `Variant` per value) before convert.rs
//! writes the value's records straight into the ring; that allocation is
//! the stack's, per value, and is the price of not writing OPC UA's
//! cryptography ourselves.
//!
//! ```text
//! convert.rs  DataValue -> ring records (sans-IO, no panic on any value)
//! connect.rs  endpoints, certificates and trust, the stack's session
//! reader.rs   the thread: subscription or polling, ring writes
//! sequence.rs which notification messages arrived; the gaps Republish asks for
//! discover.rs `millrace discover --protocol opcua`: the address space as a tag CSV
//! guard.rs    decoding limits the stack lacks, ahead of its own decoders
//! ```

mod connect;
pub mod convert;
pub mod discover;
mod guard;
pub mod reader;
pub mod sequence;

pub use reader::{requests_per_cycle, OpcuaReader};

/// The stack's error for a person: its status, and the operating
/// system's words when a socket call failed (the stack keeps those only
/// inside Debug text: `Os { code: 111, kind: ConnectionRefused, message:
/// "Connection refused" }`).
pub fn in_words(error: &opcua::types::Error) -> String {
    let context = error.to_string();
    let os_words = context
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(words, _)| words);
    match os_words {
        Some(words) => format!("{} ({words})", error.status()),
        None => context,
    }
}

#[cfg(test)]
mod tests {
    use opcua::types::{Error, StatusCode};

    #[test]
    fn socket_errors_are_said_in_the_operating_system_s_words() {
        let error = Error::new(
            StatusCode::BadCommunicationError,
            format!(
                "Could not connect to host 127.0.0.1:1, {:?}",
                std::io::Error::from_raw_os_error(111)
            ),
        );
        assert_eq!(
            super::in_words(&error),
            "BadCommunicationError (Connection refused)"
        );
        let plain = Error::new(StatusCode::BadTimeout, "no answer");
        assert_eq!(super::in_words(&plain), "BadTimeout: no answer");
    }
}
