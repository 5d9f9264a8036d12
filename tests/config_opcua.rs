//! OPC UA devices in the configuration: every key the driver serves is
//! taken with its documented meaning, and each kind of error (including a
//! key of the contract that is not built yet) names the file, line, column
//! and key and says what to write instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use millrace::config::{load, ConfigError, Identity, ReadMode, SecurityPolicy, TimeSource};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(name)
}

/// The fixture is rejected at `line:column` under `key`, with a message that
/// contains `fragment` and an "expected" clause, on one line.
#[track_caller]
fn rejects(name: &str, line: u32, column: u32, key: &str, fragment: &str) -> ConfigError {
    let error = match load(&fixture(name)) {
        Ok(_) => panic!("{name} was accepted; it must be rejected"),
        Err(e) => e,
    };
    let message = error.to_string();
    let prefix = format!("{}:{line}:{column}: key `{key}`: ", fixture(name).display());
    assert!(message.starts_with(&prefix), "{message}\nnot at\n{prefix}");
    assert!(message.contains(fragment), "{message}\nlacks\n{fragment}");
    assert!(message.contains("; expected "), "{message}");
    assert!(!message.contains('\n'), "{message}");
    error
}

#[test]
fn every_key_the_driver_serves_is_taken() {
    let config = load(&fixture("opcua_every_key.toml")).unwrap();
    let [sub, poll] = &config.devices[..] else {
        panic!("two devices")
    };
    assert_eq!(sub.address, "opc.tcp://10.0.0.9:4840/UA/Cell3");
    assert_eq!(sub.timeout, Duration::from_secs(2));
    let o = sub.opcua_part().unwrap();
    assert_eq!(o.security_policy, SecurityPolicy::None);
    assert_eq!(o.mode, ReadMode::Subscribe);
    assert_eq!(o.sampling_interval, Duration::from_millis(50));
    assert_eq!(o.publishing_interval, Duration::from_millis(200));
    assert_eq!(o.queue_size, 20);
    assert_eq!(o.time_source, TimeSource::Server);
    assert_eq!(o.application_uri.as_deref(), Some("urn:millrace:test"));
    match &o.identity {
        Identity::UserName { user, password } => {
            assert_eq!((user.as_str(), password.expose()), ("feed", "s3cret-ua"));
        }
        other => panic!("identity {other:?}"),
    }
    assert_eq!(o.tags[0].node_id.to_string(), "ns=2;s=Cell3.Temp");
    assert_eq!(
        (o.tags[0].scale, o.tags[1].data_type.to_string().as_str()),
        (0.1, "string[40]")
    );
    assert!(sub.has_text());
    // A subscribing device's pace is its sampling interval.
    assert_eq!(sub.poll_interval, Duration::from_millis(50));

    assert_eq!(poll.address, "opc.tcp://10.0.0.10:4841/");
    let p = poll.opcua_part().unwrap();
    assert_eq!(
        (p.mode, poll.poll_interval),
        (ReadMode::Poll, Duration::from_secs(1))
    );
    assert_eq!(p.identity, Identity::Anonymous);
    assert_eq!(p.tags[0].node_id.to_string(), "i=2258");

    // check-config shows the settings, never the password.
    let output = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .arg("check-config")
        .arg(fixture("opcua_every_key.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "security None/None user feed (password hidden) subscribe sampling 50ms \
             publishing 200ms queue 20 time server"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"), "{stdout}");
}

#[test]
fn errors_name_the_place_and_what_to_write() {
    rejects(
        "opcua_url.toml",
        14,
        11,
        "device[0].address",
        "`10.0.0.9:4840` is not a URL: write `opc.tcp://10.0.0.9:4840`",
    );
    rejects(
        "opcua_bad_node.toml",
        18,
        11,
        "device[0].tag[0].address",
        "`ns=2;x=Temp` is not a NodeId: `x=Temp` is not an identifier",
    );
    rejects(
        "opcua_type.toml",
        19,
        8,
        "device[0].tag[0].type",
        "unknown type `dubble` (did you mean `double`?)",
    );
    rejects(
        "opcua_poll_in_subscribe.toml",
        15,
        17,
        "device[0].poll_interval",
        "`poll_interval` is for `mode = \"poll\"`",
    );
}

#[test]
fn keys_of_the_contract_not_built_yet_are_refused_not_ignored() {
    rejects(
        "opcua_secure.toml",
        15,
        19,
        "device[0].security_policy",
        "`security_policy` (security policy Basic256Sha256) is not built yet",
    );
    rejects(
        "opcua_certificate.toml",
        15,
        15,
        "device[0].certificate",
        "`certificate` (the client certificate of a secure channel) is not built yet",
    );
    rejects(
        "opcua_count.toml",
        20,
        9,
        "device[0].tag[0].count",
        "`count` (array tags) is not built yet",
    );
}

#[test]
fn the_farm_says_plainly_that_it_serves_no_opc_ua() {
    let output = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["demo", "--protocol", "opcua", "--seconds", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("simulated OPC UA servers are not built yet"),
        "{stderr}"
    );
}
