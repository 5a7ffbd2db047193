//! The `fields` query selector: `_all` (or no selector) returns every key of a resource, a comma
//! list only those keys. `href` and `id` always stay, so a client can still fetch the whole
//! resource; names a resource does not have select nothing.

use super::wire::Params;
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashSet;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// Keys every selection keeps.
const ALWAYS: [&str; 2] = ["href", "id"];

/// The keys a request selected; `None` is all of them.
pub struct Fields(Option<HashSet<String>>);

impl Fields {
    /// Every `fields` parameter, merged; `_all` or only empty names select everything.
    pub fn from_params(params: &Params) -> Self {
        let names: HashSet<String> = params
            .all("fields")
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect();
        if names.is_empty() || names.contains("_all") {
            Fields(None)
        } else {
            Fields(Some(names))
        }
    }

    /// The resource as JSON, with only the selected keys.
    pub fn select<T: Serialize>(&self, resource: &T) -> Value {
        let mut value = serde_json::to_value(resource).unwrap_or(Value::Null);
        if let (Some(names), Value::Object(map)) = (&self.0, &mut value) {
            map.retain(|key, _| ALWAYS.contains(&key.as_str()) || names.contains(key));
        }
        value
    }

    pub fn select_all<T: Serialize>(&self, resources: &[T]) -> Vec<Value> {
        resources.iter().map(|r| self.select(r)).collect()
    }
}

/// A `T` as a response with a `fields` selector shows it, for the API document: the whole `T`
/// (a reference to its schema), or some of its keys with `href` and `id`.
fn selection_of<T: ToSchema>() -> RefOr<Schema> {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let some_keys = ObjectBuilder::new()
        .description(Some(
            "Only the keys `fields` selected, with `href` and `id`.",
        ))
        .property("href", string())
        .required("href")
        .property("id", string())
        .required("id");
    AnyOfBuilder::new()
        .item(Ref::from_schema_name(T::name()))
        .item(some_keys)
        .into()
}

/// Declares the document's schema of a resource as a `fields` selector shows it.
macro_rules! selected_schema {
    ($(#[$doc:meta])* $selected:ident, $of:ty) => {
        $(#[$doc])*
        pub struct $selected;

        impl PartialSchema for $selected {
            fn schema() -> RefOr<Schema> {
                selection_of::<$of>()
            }
        }

        impl ToSchema for $selected {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($selected))
            }

            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                schemas.push((<$of>::name().into_owned(), <$of>::schema()));
                <$of>::schemas(schemas);
            }
        }
    };
}

selected_schema!(
    /// A file or folder as `fields` selects it.
    SelectedFile,
    super::views::File
);
selected_schema!(
    /// A project as `fields` selects it.
    SelectedProject,
    super::views::Project
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_named_keys_and_keeps_href_and_id() {
        let item = json!({"href": "h", "id": "i", "name": "n", "size": 1, "tags": []});
        let pick = |q: &str| Fields::from_params(&Params::parse(q)).select(&item);
        for all in ["", "fields=_all", "fields=", "fields=name,_all"] {
            assert_eq!(pick(all), item, "{all}");
        }
        assert_eq!(
            pick("fields=name"),
            json!({"href": "h", "id": "i", "name": "n"})
        );
        assert_eq!(
            pick("fields=name,%20size&fields=tags,nope"),
            json!({"href": "h", "id": "i", "name": "n", "size": 1, "tags": []})
        );
    }
}
