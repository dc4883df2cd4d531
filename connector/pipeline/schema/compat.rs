//! Schema evolution check: a `schemas/` file against the registry's latest version of its
//! subject, at the configured level. Messages name the subject and the field.

use apache_avro::schema::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

use super::registry_config::CompatibilityLevel;

/// Checks `new` against `latest` (the registered version) at `level`; `Err` says why, naming the
/// field when Avro does.
pub(crate) fn check(
    level: CompatibilityLevel,
    latest: &Schema,
    new: &Schema,
) -> Result<(), String> {
    let backward = || {
        readable(
            latest,
            new,
            "consumers on the new schema cannot read existing records",
        )
    };
    let forward = || {
        readable(
            new,
            latest,
            "consumers on the registered schema cannot read new records",
        )
    };
    match level {
        CompatibilityLevel::None => Ok(()),
        CompatibilityLevel::Backward => backward(),
        CompatibilityLevel::Forward => forward(),
        CompatibilityLevel::Full => backward().and_then(|()| forward()),
    }
}

fn readable(writer: &Schema, reader: &Schema, consequence: &str) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(format!(
            "{consequence} for some values (an enum symbol or union branch was removed)"
        )),
        Err(error) => Err(format!("{consequence}: {}", describe(&error))),
    }
}

/// Flattens nested field mismatches into a dotted path: `field 'data.decision': ...`.
fn describe(error: &apache_avro::error::CompatibilityError) -> String {
    use apache_avro::error::CompatibilityError as E;
    let mut path = Vec::new();
    let mut current = error;
    while let E::FieldTypeMismatch(field, inner) = current {
        path.push(field.as_str());
        current = inner;
    }
    match (current, path.is_empty()) {
        (E::MissingDefaultValue(field), _) => {
            path.push(field.as_str());
            format!("field '{}' was added without a default", path.join("."))
        }
        (other, false) => format!("field '{}': {other}", path.join(".")),
        (other, true) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"R","fields":[{{"name":"data","type":{{"type":"record","name":"D","fields":[{fields}]}}}}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn adding_an_optional_field_is_backward_compatible() {
        let v1 = schema(r#"{"name":"a","type":"string"}"#);
        let v2 = schema(
            r#"{"name":"a","type":"string"},{"name":"b","type":["null","long"],"default":null}"#,
        );
        check(CompatibilityLevel::Backward, &v1, &v2).unwrap();
        check(CompatibilityLevel::Full, &v1, &v2).unwrap();
    }

    #[test]
    fn adding_a_required_field_names_it() {
        let v1 = schema(r#"{"name":"a","type":"string"}"#);
        let v2 = schema(r#"{"name":"a","type":"string"},{"name":"b","type":"long"}"#);
        let message = check(CompatibilityLevel::Backward, &v1, &v2).unwrap_err();
        assert!(
            message.contains("'data.b' was added without a default"),
            "{message}"
        );
        check(CompatibilityLevel::Forward, &v1, &v2).unwrap();
        check(CompatibilityLevel::None, &v1, &v2).unwrap();
    }

    #[test]
    fn changing_a_type_names_the_field() {
        let v1 = schema(r#"{"name":"a","type":"string"}"#);
        let v2 = schema(r#"{"name":"a","type":"long"}"#);
        let message = check(CompatibilityLevel::Backward, &v1, &v2).unwrap_err();
        assert!(message.contains("'data.a'"), "{message}");
    }
}
