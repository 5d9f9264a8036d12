//! OPC UA devices in the configuration: every key the driver serves is
//! taken with its documented meaning, and each kind of error (including a
//! key of the contract that is not built yet) names the file, line, column
//! and key and says what to write instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use millrace::config::{
    load, ConfigError, Deadband, Identity, ReadMode, SecurityPolicy, TimeSource,
};

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
fn array_tags_and_deadbands_are_taken() {
    let config = load(&fixture("opcua_arrays.toml")).unwrap();
    let device = &config.devices[0];
    let names: Vec<String> = device
        .sample_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "cell3.temps[0]",
            "cell3.temps[1]",
            "cell3.temps[2]",
            "cell3.temps[3]",
            "cell3.level",
            "cell3.count"
        ]
    );
    assert_eq!(device.tag_count(), 6);
    let opcua = device.opcua_part().unwrap();
    let deadbands: Vec<Option<Deadband>> = opcua.tags.iter().map(|t| t.deadband).collect();
    assert_eq!(
        deadbands,
        [
            Some(Deadband::Absolute(0.5)),
            Some(Deadband::Percent(2.0)),
            None
        ]
    );
    assert_eq!(opcua.tags[0].count, 4);
}

#[test]
fn a_deadband_or_count_that_cannot_work_names_its_key() {
    let base = std::fs::read_to_string(fixture("opcua_arrays.toml")).unwrap();
    for (from, to, line, tag, key, fragment) in [
        (
            "deadband = 0.5",
            "deadband = -1",
            21,
            0,
            "deadband",
            "negative deadband",
        ),
        (
            "deadband = \"2%\"",
            "deadband = \"2 units\"",
            27,
            1,
            "deadband",
            "not a deadband",
        ),
        (
            "count = 4",
            "count = 1001",
            20,
            0,
            "count",
            "count 1001 is out of range",
        ),
        (
            "type = \"float\"\ndeadband",
            "type = \"string\"\ndeadband",
            27,
            1,
            "deadband",
            "a deadband on a string tag",
        ),
        (
            "address = \"opc.tcp://10.0.0.9:4840/\"",
            "address = \"opc.tcp://10.0.0.9:4840/\"\nmode = \"poll\"\npoll_interval = \"1s\"",
            23,
            0,
            "deadband",
            "this device polls",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        let path = Path::new("plant.toml");
        let message = match millrace::config::parse_str(&text, path) {
            Ok(_) => panic!("`{to}` was accepted"),
            Err(e) => e.to_string(),
        };
        let at = format!("plant.toml:{line}:");
        assert!(message.starts_with(&at), "{message}\nnot at {at}");
        assert!(
            message.contains(&format!("key `device[0].tag[{tag}].{key}`")),
            "{message}"
        );
        assert!(message.contains(fragment), "{message}\nlacks {fragment}");
        assert!(message.contains("; expected "), "{message}");
    }
}

#[test]
fn a_secure_channel_needs_its_files_and_security_none_takes_none() {
    rejects(
        "opcua_secure.toml",
        11,
        1,
        "device[0].certificate",
        "security policy Basic256Sha256 needs `certificate`",
    );
    rejects(
        "opcua_certificate.toml",
        15,
        15,
        "device[0].certificate",
        "`certificate` is for a secure channel, and `security_policy` is None",
    );
    rejects(
        "opcua_user_certificate.toml",
        15,
        20,
        "device[0].user_certificate",
        "cannot read `",
    );
}

/// Two certificates made by `millrace opcua make-cert` in `dir` (pki and
/// other, the URI urn:millrace:test).
fn two_pkis(dir: &Path) {
    for name in ["pki", "other"] {
        let status = Command::new(env!("CARGO_BIN_EXE_millrace"))
            .args(["opcua", "make-cert", "--uri", "urn:millrace:test", "--out"])
            .arg(dir.join(name))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// A secure device whose keys are `keys` (one `key = value` a line), loaded.
fn secure(dir: &Path, keys: &str) -> Result<millrace::config::Config, ConfigError> {
    let text = format!(
        "[wal]\ndir = \"wal\"\n\n[[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"127.0.0.1:5010\"\n\
         table = \"plc\"\n\n\
         [[device]]\nname = \"ua\"\nprotocol = \"opcua\"\n\
         address = \"opc.tcp://10.0.0.9:4840/\"\nsecurity_policy = \"Basic256Sha256\"\n\
         {keys}\n\n\
         [[device.tag]]\nname = \"t\"\naddress = \"ns=2;s=T\"\ntype = \"double\"\n"
    );
    let path = dir.join("plant.toml");
    std::fs::write(&path, text).unwrap();
    load(&path)
}

/// The error names the configuration file, the line (of the key, 15 + its
/// index in `keys`), the key, and says `fragment`.
#[track_caller]
fn refused(dir: &Path, keys: &str, key: &str, fragment: &str) {
    let line = 15 + keys.lines().position(|l| l.starts_with(key)).unwrap();
    let message = secure(dir, keys).map(|_| ()).unwrap_err().to_string();
    let prefix = format!("{}:{line}:", dir.join("plant.toml").display());
    assert!(message.starts_with(&prefix), "{message}\nnot at {prefix}");
    assert!(
        message.contains(&format!("key `device[0].{key}`: ")),
        "{message}"
    );
    assert!(message.contains(fragment), "{message}\nlacks\n{fragment}");
    assert!(message.contains("; expected "), "{message}");
}

#[test]
fn the_files_of_a_secure_channel_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    two_pkis(dir);
    let good = "certificate = \"pki/own/cert.der\"\nprivate_key = \"pki/own/key.pem\"\n\
                trusted_certs = \"pki/trusted\"\napplication_uri = \"urn:millrace:test\"";
    let config = secure(dir, good).unwrap();
    let o = config.devices[0].opcua_part().unwrap();
    assert_eq!(
        o.security_mode,
        millrace::config::SecurityMode::SignAndEncrypt
    );
    let pki = o.pki.as_ref().unwrap();
    assert_eq!(pki.certificate, dir.join("pki/own/cert.der"));
    assert_eq!(pki.private_key, dir.join("pki/own/key.pem"));
    assert_eq!(pki.trusted_certs, dir.join("pki/trusted"));
    assert_eq!(pki.rejected_dir(), dir.join("pki/rejected"));

    let with = |from: &str, to: &str| good.replace(from, to);
    refused(
        dir,
        &with("pki/own/key.pem", "other/own/key.pem"),
        "private_key",
        "is not the private key of the certificate",
    );
    refused(
        dir,
        &with("pki/own/key.pem", "pki/own/nothing.pem"),
        "private_key",
        "cannot read",
    );
    refused(
        dir,
        &with("pki/own/cert.der", "pki/own/key.pem"),
        "certificate",
        "is not an X.509 certificate in PEM form",
    );
    std::fs::write(dir.join("pki/own/cert.crt"), b"x").unwrap();
    refused(
        dir,
        &with("pki/own/cert.der", "pki/own/cert.crt"),
        "certificate",
        "does not end in `.der` or `.pem`",
    );
    refused(
        dir,
        &with("urn:millrace:test", "urn:millrace:elsewhere"),
        "application_uri",
        "was not made for the application URI `urn:millrace:elsewhere`",
    );
    refused(
        dir,
        &with("pki/trusted", "pki/own"),
        "trusted_certs",
        "is not named `trusted`",
    );
    std::fs::create_dir(dir.join("other/x")).unwrap();
    refused(
        dir,
        &with("pki/trusted", "other/x/trusted"),
        "trusted_certs",
        "is not a directory",
    );
    let missing = good.replace("private_key = \"pki/own/key.pem\"\n", "");
    let message = secure(dir, &missing).map(|_| ()).unwrap_err().to_string();
    let prefix = format!(
        "{}:10:1: key `device[0].private_key`: ",
        dir.join("plant.toml").display()
    );
    assert!(message.starts_with(&prefix), "{message}");
    assert!(
        message.contains("security policy Basic256Sha256 needs `private_key`"),
        "{message}"
    );
}
