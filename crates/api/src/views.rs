//! JSON shapes of resources as the client reads them (sbg-api.md §4–6). Every documented key is
//! present (null when unknown) so the client never lazy-loads, and every `href` is absolute.
//!
//! The response types of the API declare their fields in alphabetical order: the keys went out
//! in that order when these bodies were `serde_json` maps (which sort their keys), and they still
//! do, byte for byte.

use egress_core::util::format_ms;
use egress_store::{self, FileRec, MemberKind};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A user's profile. Another user's shows only the name: the contact details, email and role
/// are null rather than absent, so the client does not re-fetch to fill them.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    #[schema(required)]
    pub address: Option<String>,
    #[schema(required)]
    pub affiliation: Option<String>,
    #[schema(required)]
    pub city: Option<String>,
    #[schema(required)]
    pub country: Option<String>,
    #[schema(required)]
    pub email: Option<String>,
    pub first_name: String,
    pub href: String,
    pub last_name: String,
    #[schema(required)]
    pub phone: Option<String>,
    #[schema(required)]
    pub role: Option<Role>,
    #[schema(required)]
    pub state: Option<String>,
    pub username: String,
    #[schema(required)]
    pub zip_code: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    Admin,
    User,
}

/// The full profile, for the user themself and platform administrators.
pub fn user(base: &str, u: &egress_store::User) -> User {
    let empty = || Some(String::new());
    User {
        address: empty(),
        affiliation: empty(),
        city: empty(),
        country: empty(),
        email: Some(u.email.clone()),
        first_name: String::new(),
        href: format!("{base}/v2/users/{}", u.username),
        last_name: String::new(),
        phone: empty(),
        role: Some(if u.is_admin { Role::Admin } else { Role::User }),
        state: empty(),
        username: u.username.clone(),
        zip_code: empty(),
    }
}

/// What any user may see of another: the name, never the email, contact details or role.
pub fn public_user(base: &str, u: &egress_store::User) -> User {
    User {
        address: None,
        affiliation: None,
        city: None,
        country: None,
        email: None,
        phone: None,
        role: None,
        state: None,
        zip_code: None,
        ..user(base, u)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Project {
    pub billing_group: String,
    pub category: Category,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub created_on: String,
    #[schema(required)]
    pub description: Option<String>,
    pub href: String,
    /// `owner/slug`.
    pub id: String,
    #[schema(format = DateTime)]
    pub modified_on: String,
    pub name: String,
    /// The id of the project's root folder.
    pub root_folder: String,
    #[schema(value_type = Object)]
    pub settings: Value,
    pub tags: Vec<String>,
    #[serde(rename = "type")]
    pub kind: ProjectType,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Category {
    Public,
    Private,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum ProjectType {
    #[serde(rename = "v2")]
    V2,
}

pub fn project(base: &str, p: &egress_store::Project) -> Project {
    Project {
        billing_group: p.billing_group.clone(),
        category: if p.is_public {
            Category::Public
        } else {
            Category::Private
        },
        created_by: p.created_by.clone(),
        created_on: format_ms(p.created_at),
        description: p.description.clone(),
        href: format!("{base}/v2/projects/{}", p.id),
        id: p.id.clone(),
        modified_on: format_ms(p.modified_at),
        name: p.name.clone(),
        root_folder: p.root_folder.clone(),
        settings: p.settings.clone(),
        tags: p.tags.clone(),
        kind: ProjectType::V2,
    }
}

/// A member of a project or volume. A member list shows usernames and permissions: `email`
/// stays null (members are not told each other's addresses).
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    #[schema(required)]
    pub email: Option<String>,
    pub href: String,
    /// The username.
    pub id: String,
    pub permissions: Permissions,
    #[serde(rename = "type")]
    pub kind: MemberType,
    pub username: String,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum MemberType {
    User,
}

/// A member's rights; `execute` only on projects.
#[derive(Debug, Serialize, ToSchema)]
pub struct Permissions {
    pub admin: bool,
    pub copy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub execute: Option<bool>,
    pub read: bool,
    pub write: bool,
}

pub fn permissions(m: &egress_store::Member) -> Permissions {
    Permissions {
        admin: m.perms.admin,
        copy: m.perms.copy,
        execute: (m.kind == MemberKind::Project).then_some(m.perms.execute),
        read: m.perms.read,
        write: m.perms.write,
    }
}

/// A member of the collection at `members_href`.
pub fn member(members_href: &str, m: &egress_store::Member) -> Member {
    Member {
        email: None,
        href: format!("{members_href}/{}", m.username),
        id: m.username.clone(),
        permissions: permissions(m),
        kind: MemberType::User,
        username: m.username.clone(),
    }
}

/// A file or folder.
#[derive(Debug, Serialize, ToSchema)]
pub struct File {
    /// Null when nothing is known of the bytes (a folder; an import whose object told nothing).
    #[schema(required)]
    pub checksums: Option<Checksums>,
    #[schema(format = DateTime)]
    pub created_on: String,
    pub href: String,
    pub id: String,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    #[schema(format = DateTime)]
    pub modified_on: String,
    pub name: String,
    pub origin: Origin,
    /// The folder it is in; null only for a project's root folder.
    #[schema(required)]
    pub parent: Option<String>,
    /// The project's id, `owner/slug`.
    pub project: String,
    /// In bytes; null for a folder.
    #[schema(required)]
    pub size: Option<i64>,
    pub storage: Storage,
    pub tags: Vec<String>,
    #[serde(rename = "type")]
    pub kind: FileType,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Folder,
}

/// What produced the file: always empty here (no tasks).
#[derive(Debug, Serialize, ToSchema)]
pub struct Origin {}

/// Where the bytes live: platform storage, or an object on a volume (an alias).
#[derive(Debug, Serialize, ToSchema)]
pub struct Storage {
    /// The object's location on the volume (aliases only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub location: Option<String>,
    #[serde(rename = "type")]
    pub kind: StorageType,
    /// The volume's id (aliases only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub volume: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum StorageType {
    Platform,
    Volume,
}

/// Hex digests recorded when the bytes arrived; an import knows only what the object's
/// metadata tells (an MD5 from a plain ETag).
#[derive(Debug, Serialize, ToSchema)]
pub struct Checksums {
    #[schema(required)]
    pub crc32c: Option<String>,
    #[schema(required)]
    pub md5: Option<String>,
}

pub fn file(base: &str, f: &FileRec) -> File {
    let storage = match (&f.volume_id, &f.location) {
        (Some(volume), Some(location)) => Storage {
            location: Some(location.clone()),
            kind: StorageType::Volume,
            volume: Some(volume.clone()),
        },
        _ => Storage {
            location: None,
            kind: StorageType::Platform,
            volume: None,
        },
    };
    let checksums = match (&f.md5, &f.crc32c) {
        (None, None) => None,
        (md5, crc32c) => Some(Checksums {
            crc32c: crc32c.clone(),
            md5: md5.clone(),
        }),
    };
    File {
        checksums,
        created_on: format_ms(f.created_at),
        href: format!("{base}/v2/files/{}", f.id),
        id: f.id.clone(),
        metadata: f.metadata.clone(),
        modified_on: format_ms(f.modified_at),
        name: f.name.clone(),
        origin: Origin {},
        parent: f.parent_id.clone(),
        project: f.project_id.clone(),
        size: if f.is_folder {
            None
        } else {
            Some(f.size.unwrap_or(0))
        },
        storage,
        tags: f.tags.clone(),
        kind: if f.is_folder {
            FileType::Folder
        } else {
            FileType::File
        },
    }
}

#[cfg(test)]
mod tests {
    //! Each view serializes to exactly the bytes the `json!` map it replaced produced.
    use super::*;
    use egress_store::Perms;
    use serde_json::json;

    fn bytes(v: impl Serialize) -> String {
        serde_json::to_string(&v).unwrap()
    }

    fn sample_user(is_admin: bool) -> egress_store::User {
        egress_store::User {
            username: "ann".into(),
            email: "ann@example.org".into(),
            is_admin,
            created_at: 0,
        }
    }

    #[test]
    fn users_keep_their_wire_bytes() {
        let u = sample_user(true);
        assert_eq!(
            bytes(user("http://h", &u)),
            bytes(json!({
                "href": "http://h/v2/users/ann", "username": "ann", "email": "ann@example.org",
                "first_name": "", "last_name": "", "affiliation": "", "phone": "", "address": "",
                "city": "", "state": "", "country": "", "zip_code": "", "role": "ADMIN",
            }))
        );
        assert_eq!(
            bytes(public_user("http://h", &sample_user(false))),
            bytes(json!({
                "href": "http://h/v2/users/ann", "username": "ann", "email": null,
                "first_name": "", "last_name": "", "affiliation": null, "phone": null,
                "address": null, "city": null, "state": null, "country": null, "zip_code": null,
                "role": null,
            }))
        );
    }

    #[test]
    fn projects_keep_their_wire_bytes() {
        let p = egress_store::Project {
            id: "ann/p".into(),
            owner: "ann".into(),
            name: "P".into(),
            description: None,
            billing_group: "bg".into(),
            category: String::new(),
            tags: vec!["t".into()],
            settings: json!({"locked": false}),
            root_folder: "r".into(),
            is_public: false,
            created_by: "ann".into(),
            created_at: 0,
            modified_at: 1000,
        };
        assert_eq!(
            bytes(project("http://h", &p)),
            bytes(json!({
                "href": "http://h/v2/projects/ann/p", "id": "ann/p", "name": "P",
                "description": null, "billing_group": "bg", "type": "v2", "tags": ["t"],
                "settings": {"locked": false}, "root_folder": "r", "category": "PRIVATE",
                "created_by": "ann", "created_on": "1970-01-01T00:00:00Z",
                "modified_on": "1970-01-01T00:00:01Z",
            }))
        );
    }

    #[test]
    fn members_keep_their_wire_bytes() {
        let perms = Perms {
            read: true,
            copy: false,
            write: true,
            execute: true,
            admin: false,
        };
        let mut m = egress_store::Member {
            kind: MemberKind::Project,
            resource_id: "ann/p".into(),
            username: "bob".into(),
            perms,
        };
        assert_eq!(
            bytes(member("http://h/m", &m)),
            bytes(json!({
                "href": "http://h/m/bob", "id": "bob", "username": "bob", "email": null,
                "type": "USER",
                "permissions": {"read": true, "copy": false, "write": true, "admin": false, "execute": true},
            }))
        );
        m.kind = MemberKind::Volume;
        assert_eq!(
            bytes(permissions(&m)),
            bytes(json!({"read": true, "copy": false, "write": true, "admin": false}))
        );
    }

    #[test]
    fn files_keep_their_wire_bytes() {
        let mut f = FileRec::new("ann/p", Some("root"), "a.txt", false);
        f.id = "f1".into();
        f.created_at = 0;
        f.modified_at = 0;
        f.size = Some(3);
        f.md5 = Some("abc".into());
        f.metadata.insert("k".into(), json!("v"));
        let expected = |storage: Value, checksums: Value| {
            bytes(json!({
                "href": "http://h/v2/files/f1", "id": "f1", "name": "a.txt", "size": 3,
                "project": "ann/p", "parent": "root", "type": "file",
                "created_on": "1970-01-01T00:00:00Z", "modified_on": "1970-01-01T00:00:00Z",
                "storage": storage, "origin": {}, "tags": [], "metadata": {"k": "v"},
                "checksums": checksums,
            }))
        };
        assert_eq!(
            bytes(file("http://h", &f)),
            expected(
                json!({"type": "PLATFORM"}),
                json!({"md5": "abc", "crc32c": null})
            )
        );
        f.md5 = None;
        f.volume_id = Some("ann/v".into());
        f.location = Some("x/a.txt".into());
        assert_eq!(
            bytes(file("http://h", &f)),
            expected(
                json!({"type": "VOLUME", "volume": "ann/v", "location": "x/a.txt"}),
                Value::Null
            )
        );
        let folder = FileRec {
            is_folder: true,
            size: None,
            parent_id: None,
            ..f
        };
        let v: Value = serde_json::from_str(&bytes(file("http://h", &folder))).unwrap();
        assert_eq!(
            (&v["size"], &v["type"], &v["parent"]),
            (&Value::Null, &json!("folder"), &Value::Null)
        );
    }
}
