//! JSON shapes of resources as the client reads them (sbg-api.md §4–6). Every documented key is
//! present (null when unknown) so the client never lazy-loads, and every `href` is absolute.

use egress_core::util::format_ms;
use egress_store::{FileRec, Member, Project, User};
use serde_json::{json, Value};

/// The full profile, for the user themself and platform administrators.
pub fn user(base: &str, u: &User) -> Value {
    json!({
        "href": format!("{base}/v2/users/{}", u.username),
        "username": u.username,
        "email": u.email,
        "first_name": "",
        "last_name": "",
        "affiliation": "",
        "phone": "",
        "address": "",
        "city": "",
        "state": "",
        "country": "",
        "zip_code": "",
        "role": if u.is_admin { "ADMIN" } else { "USER" },
    })
}

/// What any user may see of another: the name, never the email, contact details or role. The
/// hidden keys are null rather than absent, so the client does not re-fetch to fill them.
pub fn public_user(base: &str, u: &User) -> Value {
    let mut v = user(base, u);
    for key in [
        "email",
        "affiliation",
        "phone",
        "address",
        "city",
        "state",
        "country",
        "zip_code",
        "role",
    ] {
        v[key] = Value::Null;
    }
    v
}

pub fn project(base: &str, p: &Project) -> Value {
    json!({
        "href": format!("{base}/v2/projects/{}", p.id),
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "billing_group": p.billing_group,
        "type": "v2",
        "tags": p.tags,
        "settings": p.settings,
        "root_folder": p.root_folder,
        "category": if p.is_public { "PUBLIC" } else { "PRIVATE" },
        "created_by": p.created_by,
        "created_on": format_ms(p.created_at),
        "modified_on": format_ms(p.modified_at),
    })
}

/// A member of a project or volume; `member_href` is the collection the member lives in. A
/// member list shows usernames and permissions: `email` stays null (members are not told each
/// other's addresses).
pub fn member(members_href: &str, m: &Member) -> Value {
    let mut permissions = json!({
        "read": m.perms.read, "copy": m.perms.copy, "write": m.perms.write, "admin": m.perms.admin,
    });
    if m.kind == egress_store::MemberKind::Project {
        permissions["execute"] = json!(m.perms.execute);
    }
    json!({
        "href": format!("{members_href}/{}", m.username),
        "id": m.username,
        "username": m.username,
        "email": Value::Null,
        "type": "USER",
        "permissions": permissions,
    })
}

pub fn file(base: &str, f: &FileRec) -> Value {
    let storage = match (&f.volume_id, &f.location) {
        (Some(volume), Some(location)) => {
            json!({"type": "VOLUME", "volume": volume, "location": location})
        }
        _ => json!({"type": "PLATFORM"}),
    };
    // An import knows only what the object's metadata tells (an MD5 from a plain ETag).
    let checksums = match (&f.md5, &f.crc32c) {
        (None, None) => Value::Null,
        (md5, crc32c) => json!({"md5": md5, "crc32c": crc32c}),
    };
    json!({
        "href": format!("{base}/v2/files/{}", f.id),
        "id": f.id,
        "name": f.name,
        "size": if f.is_folder { Value::Null } else { json!(f.size.unwrap_or(0)) },
        "project": f.project_id,
        "parent": f.parent_id,
        "type": if f.is_folder { "folder" } else { "file" },
        "created_on": format_ms(f.created_at),
        "modified_on": format_ms(f.modified_at),
        "storage": storage,
        "origin": {},
        "tags": f.tags,
        "metadata": f.metadata,
        "checksums": checksums,
    })
}
