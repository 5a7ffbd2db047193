//! The query keys a file or project listing accepts, read into the store's filters. A key a
//! listing does not know is refused (90000), so a misspelt filter cannot silently list everything.

use super::wire::Params;
use crate::error::{ApiError, ApiResult, Code};
use egress_core::limits;
use egress_store::{FileFilter, ProjectFilter};

/// Keys every listing accepts: paging and the `fields` selector.
const COMMON_KEYS: [&str; 3] = ["offset", "limit", "fields"];
/// The origins a file filter may name (SBG: the task or dataset that made the file).
const ORIGIN_KEYS: [&str; 2] = ["task", "dataset"];

/// The filters of a folder listing: `name` and `tag` (repeatable: any of them),
/// `metadata.<key>` (repeatable: any of its values; several keys: all of them) and
/// `origin.task` / `origin.dataset`. `scope` names the keys that pick the folder.
pub fn file_filter(params: &Params, scope: &[&str]) -> ApiResult<FileFilter> {
    let mut filter = FileFilter::default();
    for (key, value) in &params.0 {
        let key = key.as_str();
        if COMMON_KEYS.contains(&key) || scope.contains(&key) {
            continue;
        }
        if key == "name" {
            filter.names.push(value.clone());
        } else if key == "tag" {
            filter.tags.push(value.clone());
        } else if let Some(field) = key.strip_prefix("metadata.").filter(|f| !f.is_empty()) {
            add_value(&mut filter.metadata, field, value);
        } else if let Some(origin) = key.strip_prefix("origin.") {
            if !ORIGIN_KEYS.contains(&origin) {
                return Err(unknown(key));
            }
            add_value(&mut filter.origin, origin, value);
        } else {
            return Err(unknown(key));
        }
    }
    let values =
        |by_key: &[(String, Vec<String>)]| by_key.iter().map(|(_, v)| v.len()).sum::<usize>();
    limits::check_filter_values(
        filter.names.len() + filter.tags.len() + values(&filter.metadata) + values(&filter.origin),
    )?;
    Ok(filter)
}

/// The filters of a project listing: `name` (one), `category` and `tags` (repeatable: any of them).
pub fn project_filter(params: &Params) -> ApiResult<ProjectFilter> {
    let mut filter = ProjectFilter::default();
    for (key, value) in &params.0 {
        match key.as_str() {
            key if COMMON_KEYS.contains(&key) => {}
            "name" => match &filter.name {
                Some(name) if name != value => {
                    return Err(ApiError::new(
                        Code::BadRequest,
                        "Query parameter 'name' may be given once.",
                    ))
                }
                _ => filter.name = Some(value.clone()),
            },
            "category" => filter.public.push(is_public(value)?),
            "tags" => filter.tags.push(value.clone()),
            key => return Err(unknown(key)),
        }
    }
    limits::check_filter_values(
        usize::from(filter.name.is_some()) + filter.public.len() + filter.tags.len(),
    )?;
    Ok(filter)
}

/// The category a project list shows (`Category`), in any case: PUBLIC or PRIVATE.
fn is_public(category: &str) -> ApiResult<bool> {
    match category.to_ascii_uppercase().as_str() {
        "PUBLIC" => Ok(true),
        "PRIVATE" => Ok(false),
        _ => Err(ApiError::new(
            Code::BadRequest,
            "Query parameter 'category' must be PRIVATE or PUBLIC.",
        )),
    }
}

/// Adds `value` to the values of `key`, keeping keys in their first order.
fn add_value(by_key: &mut Vec<(String, Vec<String>)>, key: &str, value: &str) {
    match by_key.iter_mut().find(|(k, _)| k == key) {
        Some((_, values)) => values.push(value.to_string()),
        None => by_key.push((key.to_string(), vec![value.to_string()])),
    }
}

fn unknown(key: &str) -> ApiError {
    ApiError::new(
        Code::BadRequest,
        format!("Unknown query parameter '{key}' for this list."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_filters_group_metadata_by_key_and_refuse_unknown_keys() {
        let params = Params::parse(
            "project=a/b&fields=_all&limit=5&name=x&tag=t&metadata.s=1&metadata.k=v&metadata.s=2&origin.task=T",
        );
        let filter = file_filter(&params, &["project", "parent"]).unwrap();
        assert_eq!(filter.names, ["x"]);
        assert_eq!(filter.tags, ["t"]);
        assert_eq!(
            filter.metadata,
            [
                ("s".to_string(), vec!["1".to_string(), "2".to_string()]),
                ("k".to_string(), vec!["v".to_string()])
            ]
        );
        assert_eq!(filter.origin, [("task".to_string(), vec!["T".to_string()])]);
        for bad in [
            "tags=x",
            "metadata.=x",
            "origin.app=x",
            "project=a/b",
            "dataset=d",
        ] {
            let err = file_filter(&Params::parse(bad), &["parent"]).unwrap_err();
            assert_eq!(err.0.code, Code::BadRequest, "{bad}");
        }
    }

    #[test]
    fn project_filters_take_one_name_and_repeated_categories_and_tags() {
        let params =
            Params::parse("name=p&name=p&category=public&tags=a&tags=b&offset=0&fields=_all");
        let filter = project_filter(&params).unwrap();
        assert_eq!(filter.name.as_deref(), Some("p"));
        assert_eq!(filter.public, [true]);
        assert_eq!(filter.tags, ["a", "b"]);
        for bad in ["name=a&name=b", "tag=x", "owner=x", "category=SECRET"] {
            let err = project_filter(&Params::parse(bad)).unwrap_err();
            assert_eq!(err.0.code, Code::BadRequest, "{bad}");
        }
    }
}
