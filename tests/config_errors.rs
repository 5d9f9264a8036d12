//! One test per kind of configuration error (Modbus and S7): each loads a fixture from
//! tests/configs/ and checks the exact file, line, column and key path (or CSV
//! line and column) of the error, and that it says what would be valid. A few
//! also run the real binary (`millrace check-config`) and check the exit code
//! and the message on stderr.

use std::path::{Path, PathBuf};
use std::process::Command;

use millrace::config::{load, ConfigError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(name)
}

fn load_err(name: &str) -> ConfigError {
    match load(&fixture(name)) {
        Ok(_) => panic!("{name} was accepted; it must be rejected"),
        Err(e) => e,
    }
}

/// The fixture is rejected at `line:column` of itself, under `key`, with a
/// message that contains `fragment` and an "expected" clause.
#[track_caller]
fn rejects(name: &str, line: u32, column: u32, key: &str, fragment: &str) -> ConfigError {
    let error = load_err(name);
    let path = fixture(name);
    let message = error.to_string();
    assert_eq!(error.file(), path, "{message}");
    assert_eq!(
        (error.line(), error.column(), error.key()),
        (Some(line), Some(column), Some(key))
    );
    let prefix = format!("{}:{line}:{column}: key `{key}`: ", path.display());
    assert!(
        message.starts_with(&prefix),
        "{message}\ndoes not start with\n{prefix}"
    );
    assert!(
        message.contains(fragment),
        "{message}\ndoes not contain\n{fragment}"
    );
    assert!(message.contains("; expected "), "{message}");
    assert!(!message.contains('\n'), "{message}");
    error
}

/// The fixture is rejected at `line` of the CSV file `csv`, in `column`.
#[track_caller]
fn rejects_csv(name: &str, csv: &str, line: u32, column: &str, fragment: &str) {
    let error = load_err(name);
    let path = fixture(csv);
    let message = error.to_string();
    assert_eq!(error.file(), path, "{message}");
    assert_eq!(
        (error.line(), error.csv_column()),
        (Some(line), Some(column)),
        "{message}"
    );
    let prefix = format!("{}:{line}: column `{column}`: ", path.display());
    assert!(
        message.starts_with(&prefix),
        "{message}\ndoes not start with\n{prefix}"
    );
    assert!(
        message.contains(fragment),
        "{message}\ndoes not contain\n{fragment}"
    );
    assert!(message.contains("; expected "), "{message}");
}

/// `millrace check-config NAME` run inside tests/configs: exit 1, nothing on
/// stdout, and stderr is exactly one line starting with `prefix`.
#[track_caller]
fn binary_rejects(name: &str, prefix: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .arg("check-config")
        .arg(name)
        .current_dir(fixture(""))
        .env_remove("MILLRACE_TEST_KDB_PASSWORD")
        .output()
        .unwrap_or_else(|e| panic!("cannot run millrace: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.starts_with(prefix),
        "{stderr}\ndoes not start with\n{prefix}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn toml_syntax_error() {
    let error = load_err("syntax.toml");
    let message = error.to_string();
    let path = fixture("syntax.toml");
    // The unterminated string opens at column 17 of line 16; the parser
    // notices at the end of that line.
    assert_eq!(
        (error.line(), error.column(), error.key()),
        (Some(16), Some(23), None)
    );
    assert!(message.starts_with(&format!("{}:16:23: TOML syntax error: ", path.display())));
    assert!(message.contains("; expected valid TOML"), "{message}");
    binary_rejects("syntax.toml", "syntax.toml:16:23: TOML syntax error: ");
}

#[test]
fn unknown_key_suggests_the_near_one() {
    let fragment = "unknown key `pol_interval` (did you mean `poll_interval`?)";
    rejects(
        "unknown_key.toml",
        16,
        1,
        "device[0].pol_interval",
        fragment,
    );
    binary_rejects(
        "unknown_key.toml",
        "unknown_key.toml:16:1: key `device[0].pol_interval`: ",
    );
}

#[test]
fn unknown_table_suggests_the_near_one() {
    let fragment = "unknown key `devices` (did you mean `device`?)";
    rejects("unknown_table.toml", 11, 3, "devices", fragment);
}

#[test]
fn wrong_type() {
    rejects(
        "wrong_type.toml",
        15,
        11,
        "device[0].unit_id",
        "wrong type: found string",
    );
    binary_rejects(
        "wrong_type.toml",
        "wrong_type.toml:15:11: key `device[0].unit_id`: wrong type",
    );
    rejects(
        "bare_duration.toml",
        16,
        17,
        "device[0].poll_interval",
        "found integer",
    );
}

#[test]
fn missing_required_key_points_at_the_table_header() {
    let error = rejects(
        "missing_key.toml",
        11,
        1,
        "device[0].address",
        "missing key `address`",
    );
    assert!(error.to_string().contains("expected `host:port`"));
}

#[test]
fn duplicate_tag_names_both_places() {
    let path = fixture("duplicate_tag.toml");
    let first = format!(
        "first defined at {}:19:8 (device `press-01`)",
        path.display()
    );
    rejects("duplicate_tag.toml", 32, 8, "device[1].tag[0].name", &first);
    binary_rejects(
        "duplicate_tag.toml",
        "duplicate_tag.toml:32:8: key `device[1].tag[0].name`: duplicate tag name `press01.temp`, \
         first defined at duplicate_tag.toml:19:8",
    );
}

#[test]
fn duplicate_tag_between_toml_and_csv() {
    let toml = fixture("duplicate_tag_csv.toml");
    let first = format!("first defined at {}:20:8", toml.display());
    rejects_csv(
        "duplicate_tag_csv.toml",
        "duplicate_tag.csv",
        3,
        "name",
        &first,
    );
}

#[test]
fn overlapping_registers() {
    let path = fixture("overlap.toml");
    let fragment = format!(
        "tag `press01.pressure` (holding 101) overlaps tag `press01.temp` (holding 100..=101) \
         defined at {}:21:11",
        path.display()
    );
    rejects(
        "overlap.toml",
        27,
        11,
        "device[0].tag[1].address",
        &fragment,
    );
    binary_rejects(
        "overlap.toml",
        "overlap.toml:27:11: key `device[0].tag[1].address`: ",
    );
}

#[test]
fn bools_share_a_register_only_at_different_bits() {
    // ready (bit 0) and running (bit 1) share register 110; fault reuses bit 0.
    let fragment = "tag `press01.fault` (holding 110 bit 0) overlaps tag `press01.ready`";
    rejects(
        "bits_share.toml",
        41,
        11,
        "device[0].tag[3].address",
        fragment,
    );
    let fragment = "tag `press01.flag` (holding 101 bit 3) overlaps tag `press01.temp`";
    rejects(
        "bit_in_value.toml",
        27,
        11,
        "device[0].tag[1].address",
        fragment,
    );
}

#[test]
fn overlapping_coils() {
    let fragment = "tag `press01.start` (coil 5) overlaps tag `press01.run` (coil 5)";
    rejects(
        "coil_overlap.toml",
        33,
        11,
        "device[0].tag[2].address",
        fragment,
    );
}

#[test]
fn last_register_past_65535() {
    let fragment = "a float64 at 65534 ends at register 65537";
    let error = rejects(
        "out_of_range.toml",
        21,
        11,
        "device[0].tag[0].address",
        fragment,
    );
    assert!(error
        .to_string()
        .ends_with("expected an address at most 65532"));
    rejects(
        "address_too_big.toml",
        21,
        11,
        "device[0].tag[0].address",
        "70000 is out of range",
    );
}

#[test]
fn type_that_does_not_fit_its_area() {
    let fragment = "type `float32` does not fit area `coil`";
    let error = rejects("type_area.toml", 22, 8, "device[0].tag[0].type", fragment);
    assert!(error.to_string().ends_with("; expected bool"));
    binary_rejects(
        "type_area.toml",
        "type_area.toml:22:8: key `device[0].tag[0].type`: type",
    );
}

#[test]
fn unknown_words() {
    let error = rejects(
        "bad_order.toml",
        23,
        9,
        "device[0].tag[0].order",
        "unknown value `ABDC`",
    );
    assert!(error
        .to_string()
        .ends_with("expected one of `ABCD`, `CDAB`, `BADC`, `DCBA`"));
    let fragment = "unknown value `holdings` (did you mean `holding`?)";
    rejects("bad_area.toml", 20, 8, "device[0].tag[0].area", fragment);
    let fragment = "unknown value `modbus-rtu`";
    let error = rejects("bad_protocol.toml", 13, 12, "device[0].protocol", fragment);
    assert!(error.to_string().contains("`modbus-rtu-tcp`"));
}

#[test]
fn bit_rules() {
    rejects(
        "bit_range.toml",
        29,
        7,
        "device[0].tag[1].bit",
        "bit 16 is out of range",
    );
    let fragment = "`bit` is only for bool tags, this one is `float32`";
    rejects("bit_non_bool.toml", 23, 7, "device[0].tag[0].bit", fragment);
    // Absent: the error points at the tag's table header.
    let fragment = "a bool in area `holding` needs `bit`";
    rejects("bool_no_bit.toml", 24, 1, "device[0].tag[1].bit", fragment);
}

#[test]
fn string_length_rules() {
    let fragment = "length 251 is out of range";
    rejects(
        "string_length.toml",
        29,
        10,
        "device[0].tag[1].length",
        fragment,
    );
    let fragment = "a string tag needs `length`";
    rejects(
        "string_no_length.toml",
        24,
        1,
        "device[0].tag[1].length",
        fragment,
    );
}

#[test]
fn bad_durations_and_sizes() {
    let fragment = "unknown duration unit `parsecs`";
    rejects(
        "bad_duration.toml",
        16,
        17,
        "device[0].poll_interval",
        fragment,
    );
    // 100MB = 100,000,000 bytes, not a whole number of 4KiB pages.
    let fragment = "100000000 is not a multiple of 4KiB";
    rejects("bad_size.toml", 4, 16, "wal.segment_size", fragment);
    rejects(
        "bad_size_unit.toml",
        4,
        9,
        "wal.quota",
        "unknown size unit `GB2`",
    );
}

#[test]
fn sink_columns_rules() {
    rejects(
        "columns_unknown.toml",
        10,
        64,
        "sink[0].columns[6]",
        "unknown column `txt` (did you mean `text`?)",
    );
    rejects(
        "columns_order.toml",
        10,
        12,
        "sink[0].columns[0]",
        "`sym` at position 1 where tick.q wants `time`",
    );
    rejects(
        "columns_missing.toml",
        10,
        11,
        "sink[0].columns",
        "column `seq` is missing",
    );
    rejects(
        "columns_type.toml",
        10,
        11,
        "sink[0].columns",
        "wrong type: found string",
    );
}

/// A device with a text tag needs every sink to carry text: the error names
/// the sink, the device and its tag, and says what to add where.
#[test]
fn text_tags_need_a_text_column_in_every_sink() {
    let fragment = "sink `tp` has no `text` column, but device `press-01` has the text tag \
                    `press01.recipe`";
    let fix = "add \"text\" to the sink's columns and to the tickerplant's table schema";
    let error = rejects("text_no_column.toml", 5, 1, "sink[0].columns", fragment);
    assert!(error.to_string().contains(fix), "{error}");
    let error = rejects(
        "text_no_column_key.toml",
        10,
        11,
        "sink[0].columns",
        fragment,
    );
    assert!(error.to_string().contains(fix), "{error}");
    let config = load(&fixture("text_column.toml")).unwrap_or_else(|e| panic!("{e}"));
    let columns = config.sinks[0].columns;
    assert_eq!(
        columns.to_string(),
        "time, sym, text, device, value, quality, seq"
    );
}

#[test]
fn password_env_and_file_together() {
    let fragment = "both `password_env` and `password_file` are set";
    rejects(
        "secret_both.toml",
        11,
        17,
        "sink[0].password_file",
        fragment,
    );
}

#[test]
fn password_file_missing() {
    let fragment = "cannot read `";
    rejects(
        "secret_file_missing.toml",
        10,
        17,
        "sink[0].password_file",
        fragment,
    );
}

#[test]
fn unit_id_range() {
    rejects(
        "unit_id.toml",
        15,
        11,
        "device[0].unit_id",
        "256 is out of range",
    );
}

#[test]
fn duplicate_device_and_sink_names() {
    let path = fixture("duplicate_device.toml");
    let fragment = format!(
        "duplicate device name `press-01`, first at {}:12:8",
        path.display()
    );
    rejects("duplicate_device.toml", 25, 8, "device[1].name", &fragment);
    let path = fixture("duplicate_sink.toml");
    let fragment = format!("duplicate sink name `tp`, first at {}:6:8", path.display());
    rejects("duplicate_sink.toml", 12, 8, "sink[1].name", &fragment);
}

#[test]
fn address_shape_and_names() {
    rejects(
        "bad_address.toml",
        14,
        11,
        "device[0].address",
        "`10.0.0.5` has no `:port`",
    );
    rejects("empty_name.toml", 12, 8, "device[0].name", "is empty");
}

#[test]
fn csv_bad_cell() {
    let fragment = "`4x0` is not a whole number";
    rejects_csv("csv_bad_cell.toml", "bad_cell.csv", 3, "address", fragment);
    binary_rejects(
        "csv_bad_cell.toml",
        "bad_cell.csv:3: column `address`: `4x0`",
    );
}

#[test]
fn csv_bad_header() {
    let fragment = "unknown column `adress` (did you mean `address`?)";
    rejects_csv(
        "csv_bad_header.toml",
        "bad_header.csv",
        1,
        "adress",
        fragment,
    );
}

#[test]
fn csv_type_and_order() {
    let fragment = "type `float32` does not fit area `coil`";
    rejects_csv("csv_type_area.toml", "type_area.csv", 3, "type", fragment);
    rejects_csv(
        "csv_bad_order.toml",
        "bad_order.csv",
        2,
        "order",
        "unknown value `CDBA`",
    );
}

#[test]
fn csv_file_missing() {
    rejects(
        "csv_missing.toml",
        17,
        12,
        "device[0].tags_csv",
        "cannot read `",
    );
}

#[test]
fn a_missing_config_file() {
    let error = load_err("no-such-config.toml");
    assert_eq!((error.line(), error.key()), (None, None));
    assert!(error
        .to_string()
        .starts_with(&format!("{}: cannot read", error.file().display())));
    binary_rejects(
        "no-such-config.toml",
        "no-such-config.toml: cannot read the file",
    );
}

// ---------------------------------------------------------------- S7

#[test]
fn a_key_of_another_protocol_names_the_keys_this_one_takes() {
    let fragment = "unknown key `unit_id` for protocol `s7` (it is a key of modbus-tcp and \
                    modbus-rtu-tcp devices)";
    let error = rejects("s7_unit_id.toml", 16, 1, "device[0].unit_id", fragment);
    let expected = "; expected a key s7 devices take, one of `name`, `protocol`, `address`, \
                    `poll_interval`, `timeout`, `max_inflight`, `tags_csv`, `tag`, `rack`, \
                    `slot`, `connection_type`, `pdu_size`, `local_tsap`, `remote_tsap`, \
                    `max_hole`";
    assert!(error.to_string().ends_with(expected), "{error}");
    binary_rejects(
        "s7_unit_id.toml",
        "s7_unit_id.toml:16:1: key `device[0].unit_id`: unknown key `unit_id` for protocol `s7`",
    );
    let fragment = "unknown key `slot` for protocol `modbus-tcp` (it is a key of s7 devices)";
    let error = rejects("modbus_slot.toml", 17, 1, "device[0].slot", fragment);
    assert!(error
        .to_string()
        .contains("expected a key modbus-tcp devices take, one of"));
    let fragment = "unknown key `area` for protocol `s7` (it is a key of modbus-tcp and \
                    modbus-rtu-tcp tags)";
    let error = rejects("s7_tag_area.toml", 21, 1, "device[0].tag[0].area", fragment);
    assert!(error.to_string().ends_with(
        "expected a key s7 tags take, one of `name`, `address`, `type`, `scale`, `offset`, \
         `description`"
    ));
    let fragment = "unknown key `rak` (did you mean `rack`?)";
    rejects("s7_typo.toml", 16, 1, "device[0].rak", fragment);
}

#[test]
fn s7_size_letter_that_does_not_fit_the_type() {
    let fragment = "`DB10.DBW20` is a word (2 bytes) but `real` is 4 bytes: write `DB10.DBD20`";
    let error = rejects("s7_size.toml", 19, 11, "device[0].tag[0].address", fragment);
    assert!(error
        .to_string()
        .ends_with("; expected a double word address for `real`"));
    binary_rejects(
        "s7_size.toml",
        &format!("s7_size.toml:19:11: key `device[0].tag[0].address`: {fragment}"),
    );
    let fragment = "`DB10.DBB4` is a byte but `bool` is one bit: write `DB10.DBX4.0`";
    rejects(
        "s7_bool_byte.toml",
        24,
        11,
        "device[0].tag[1].address",
        fragment,
    );
    let fragment = "`M0.1` is a bit but `int` is 2 bytes: write `MW0`";
    rejects(
        "s7_bit_int.toml",
        24,
        11,
        "device[0].tag[1].address",
        fragment,
    );
    let fragment = "`DB7.DBD100` is a double word (4 bytes) but `lreal` is 8 bytes: write its \
                    first byte, `DB7.DBB100`";
    rejects(
        "s7_wide_dword.toml",
        19,
        11,
        "device[0].tag[0].address",
        fragment,
    );
    let fragment = "`lreal` at `DB1.DBB2097145` ends at byte 2097152, past 2097151";
    rejects(
        "s7_past_top.toml",
        19,
        11,
        "device[0].tag[0].address",
        fragment,
    );
}

#[test]
fn s7_addresses_that_are_not_step_7_addresses() {
    let at = "device[0].tag[0].address";
    let fragment = "`DB0.DBD0` is not an S7 address: data blocks number from 1";
    let error = rejects("s7_db0.toml", 19, 11, at, fragment);
    assert!(error
        .to_string()
        .contains("expected a Step 7 address such as"));
    let fragment = "`DB10,X4.3` is not an S7 address: after the DB number comes `.DBX`";
    rejects("s7_bad_address.toml", 19, 11, at, fragment);
    let fragment = "`DB10.DBX4` is not an S7 address: a bit address needs its bit";
    rejects("s7_no_bit.toml", 19, 11, at, fragment);
    let fragment = "`DB10.DBW4.1` is not an S7 address: a word address has no bit";
    rejects("s7_bit_on_word.toml", 19, 11, at, fragment);
}

#[test]
fn s7_types() {
    let fragment = "string[255]: an S7 STRING holds 1..=254 characters";
    rejects(
        "s7_string_range.toml",
        25,
        8,
        "device[0].tag[1].type",
        fragment,
    );
    let fragment = "wstring[342]: at most 341 characters here";
    rejects(
        "s7_wstring_range.toml",
        20,
        8,
        "device[0].tag[0].type",
        fragment,
    );
    let error = rejects(
        "s7_unknown_type.toml",
        20,
        8,
        "device[0].tag[0].type",
        "unknown type `float32`",
    );
    assert!(error
        .to_string()
        .contains("expected an S7 type: bool, byte"));
    let fragment = "`scale` is only for numeric tags, this one is `bool`";
    rejects(
        "s7_scale_bool.toml",
        21,
        9,
        "device[0].tag[0].scale",
        fragment,
    );
}

#[test]
fn s7_device_keys_out_of_range() {
    rejects("s7_rack.toml", 16, 8, "device[0].rack", "8 is out of range");
    rejects(
        "s7_slot.toml",
        16,
        8,
        "device[0].slot",
        "32 is out of range",
    );
    let error = rejects(
        "s7_pdu.toml",
        16,
        12,
        "device[0].pdu_size",
        "200 is out of range",
    );
    assert!(error
        .to_string()
        .ends_with("expected an integer in 240..=960"));
    let fragment = "unknown value `pgs` (did you mean `pg`?)";
    rejects(
        "s7_connection_type.toml",
        16,
        19,
        "device[0].connection_type",
        fragment,
    );
    let fragment = "`1.0.0` is not a TSAP";
    rejects("s7_tsap.toml", 16, 14, "device[0].local_tsap", fragment);
    let fragment = "`slot` has no effect when `remote_tsap` is set";
    rejects("s7_tsap_and_slot.toml", 16, 8, "device[0].slot", fragment);
    let error = rejects(
        "s7_port.toml",
        14,
        11,
        "device[0].address",
        "`0` is not a port 1..=65535",
    );
    assert!(error.to_string().contains("(port 102 if none)"));
}

#[test]
fn s7_and_modbus_tag_names_are_unique_together() {
    let path = fixture("s7_duplicate.toml");
    let first = format!(
        "duplicate tag name `press01.temp`, first defined at {}:19:8 (device `press-01`)",
        path.display()
    );
    rejects("s7_duplicate.toml", 31, 8, "device[1].tag[0].name", &first);
}

#[test]
fn s7_csv_columns_and_rows() {
    let fragment = "unknown column `area` for protocol `s7` (it is a column of modbus-tcp and \
                    modbus-rtu-tcp tags)";
    rejects_csv(
        "s7_csv_column.toml",
        "s7_modbus_columns.csv",
        1,
        "area",
        fragment,
    );
    let error = load_err("s7_csv_column.toml").to_string();
    assert!(
        error.ends_with(
            "expected a column s7 tags take, one of `name`, `address`, `type`, `scale`, \
             `offset`, `description`"
        ),
        "{error}"
    );
    binary_rejects(
        "s7_csv_column.toml",
        "s7_modbus_columns.csv:1: column `area`: unknown column `area` for protocol `s7`",
    );
    let fragment = "`MW8` is a word (2 bytes) but `real` is 4 bytes: write `MD8`";
    rejects_csv("s7_csv_size.toml", "s7_size.csv", 3, "address", fragment);
    let fragment = "the header has no `address` column";
    rejects_csv(
        "s7_csv_no_address.toml",
        "s7_no_address.csv",
        1,
        "address",
        fragment,
    );
}

/// Routing (`devices` on a sink): a device no sink takes is an error at its
/// name, naming it; a pattern that matches no device is an error at the
/// pattern; an empty list is an error; text rules follow the routes.
#[test]
fn sink_device_routes() {
    let error = rejects(
        "routes_unrouted.toml",
        33,
        8,
        "device[1].name",
        "device `cell3-ua` goes to no sink: no `devices` pattern of sink(s) tp-line1, \
         tp-press matches it",
    );
    assert!(
        error.to_string().contains("add a pattern for it"),
        "{error}"
    );
    rejects(
        "routes_typo.toml",
        10,
        23,
        "sink[0].devices[1]",
        "sink `tp`: the pattern `pres-*` matches no device (devices: line1-a)",
    );
    rejects(
        "routes_empty.toml",
        10,
        11,
        "sink[0].devices",
        "the list is empty: this sink would take no device",
    );
    // `tp-num` takes no text device, so it needs no text column; `tp-all`
    // takes `press-01` and its text, so it does.
    rejects(
        "routes_text.toml",
        13,
        1,
        "sink[1].columns",
        "sink `tp-all` has no `text` column, but device `press-01` has the text tag \
         `press01.recipe`",
    );
    binary_rejects(
        "routes_unrouted.toml",
        "routes_unrouted.toml:33:8: key `device[1].name`: device `cell3-ua` goes to no sink",
    );
}

/// check-config shows, per sink, its patterns and the devices they take.
#[test]
fn check_config_shows_each_sinks_devices() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("routes_unrouted.toml"))
        .unwrap()
        .replace(
            "devices = [\"press-*\"]",
            "devices = [\"press-*\", \"cell?-*\"]",
        );
    let path = dir.path().join("plant.toml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("    devices: line1-* -> 1 device(s): line1-a\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    devices: press-* cell?-* -> 2 device(s): cell3-ua press-01\n"),
        "{stdout}"
    );
}

/// `[gateway] id` is a symbol in every row of a `gateway` column: a name
/// without spaces; the default is the host name, and `gateway` is a column
/// a sink may list.
#[test]
fn gateway_id_rules() {
    rejects(
        "gateway_bad_id.toml",
        3,
        6,
        "gateway.id",
        "`edge 03` is not a gateway id",
    );
    let text = std::fs::read_to_string(fixture("gateway_bad_id.toml"))
        .unwrap()
        .replace("edge 03", "edge-03");
    let config = millrace::config::parse_str(&text, Path::new("plant.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.gateway.id, "edge-03");
    assert!(config.sinks[0].columns.has_gateway());
    let text = text.replace("[gateway]\nid = \"edge-03\"\n", "");
    let config = millrace::config::parse_str(&text, Path::new("plant.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    // parse_str reads no file: the host name is unknown, the default stands in.
    assert_eq!(config.gateway.id, "millrace");
    let config = millrace::config::parse_with(
        &text,
        Path::new("plant.toml"),
        &millrace::config::SystemSources,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(config.gateway.id, host.trim());
}

// ---------------------------------------------------------------- EtherNet/IP

#[test]
fn enip_errors_name_the_key_and_say_what_to_write() {
    let fragment = "unknown key `unit_id` for protocol `ethernet-ip`";
    let error = rejects(
        "enip_unit_id.toml",
        20,
        1,
        "device[0].tag[0].unit_id",
        fragment,
    );
    assert!(error.to_string().ends_with(
        "expected a key ethernet-ip tags take, one of `name`, `address`, `type`, `count`, \
         `scale`, `offset`, `description`"
    ));
    let fragment = "`Line.5` names a bit of an integer, which is read as type bool, not real";
    rejects(
        "enip_bit_real.toml",
        20,
        8,
        "device[0].tag[0].type",
        fragment,
    );
    let fragment = "`Line..Speed` is not a Logix tag address: `Line..Speed` has an empty \
                    member name (member 2 of 3)";
    rejects(
        "enip_bad_address.toml",
        19,
        11,
        "device[0].tag[0].address",
        fragment,
    );
    let fragment = "path `1` has 1 item(s), an odd count: a route is pairs of port and slot";
    rejects("enip_path.toml", 16, 8, "device[0].path", fragment);
    rejects(
        "enip_count.toml",
        21,
        9,
        "device[0].tag[0].count",
        "count 0 is out of range",
    );
    let fragment = "8000 is out of range";
    let error = rejects(
        "enip_connection_size.toml",
        16,
        19,
        "device[0].connection_size",
        fragment,
    );
    assert!(error
        .to_string()
        .ends_with("expected an integer in 200..=4002"));
    binary_rejects(
        "enip_bad_address.toml",
        "enip_bad_address.toml:19:11: key `device[0].tag[0].address`: `Line..Speed` is not a \
         Logix tag address",
    );
}

#[test]
fn discover_of_opcua_says_what_is_wrong_with_the_url_or_the_node() {
    // Discovery itself: tests/discover_opcua.rs and tests/discover_enip.rs.
    for (args, said) in [
        (
            ["10.0.0.8", "--node", "i=85"],
            "millrace discover: `10.0.0.8`: `10.0.0.8` is not a URL: write `opc.tcp://10.0.0.8`",
        ),
        (
            ["opc.tcp://127.0.0.1:1/", "--node", "ns=2;x=1"],
            "millrace discover: --node `ns=2;x=1`: `x=1` is not an identifier",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_millrace"))
            .args(["discover", "--protocol", "opcua"])
            .args(args)
            .output()
            .expect("run millrace");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(output.stdout.is_empty());
        assert!(stderr.starts_with(said), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
