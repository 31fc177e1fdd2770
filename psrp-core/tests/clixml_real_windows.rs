//! Every CLIXML payload captured from real Windows hosts
//! (shared/real-windows/clixml) decodes to the values psrpcore found in it,
//! and re-encodes to XML that decodes to the same value.

mod clixml_support;

use clixml_support::{assert_no_failures, check_case};
use psrp_core::clixml::{decode, encode, to_json};
use psrp_tests::real_windows_dir;
use serde_json::Value;

#[test]
fn every_capture_decodes_to_psrpcore_values() {
    let dir = real_windows_dir().join("clixml");
    let names = psrp_tests::xml_case_names(&dir);
    assert!(names.len() >= 48, "only {} captures", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let xml = std::fs::read_to_string(dir.join(format!("{name}.xml"))).unwrap();
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        let result = check_case(&expected, &xml).and_then(|v| match v {
            // Re-encoding keeps the value.
            Some(v) => match decode(&encode(&v)) {
                Ok(again) if again == v => Ok(()),
                Ok(_) => Err("re-encoded value differs".to_owned()),
                Err(e) => Err(format!("re-encoded XML does not decode: {e}")),
            },
            None => Ok(()),
        });
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert_no_failures(&failures, names.len(), "captures");
}

#[test]
fn json_of_captures_never_shows_secure_strings() {
    let dir = real_windows_dir().join("clixml");
    for name in ["securestring_encrypted", "pscredential_output"] {
        let xml = std::fs::read_to_string(dir.join(format!("{name}.xml"))).unwrap();
        let start = xml.find("<SS").unwrap();
        let text_start = start + xml[start..].find('>').unwrap() + 1;
        let ciphertext = &xml[text_start..text_start + xml[text_start..].find('<').unwrap()];
        assert!(ciphertext.len() > 10, "{name}: {ciphertext}");
        let v = decode(&xml).unwrap();
        let json = to_json(&v).to_string();
        assert!(!json.contains(ciphertext), "{name}: {json}");
        assert!(
            json.contains("System.Security.SecureString"),
            "{name}: {json}"
        );
        assert!(
            !format!("{v:?}").contains(ciphertext),
            "{name}: Debug shows the ciphertext"
        );
    }
}
