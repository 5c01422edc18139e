//! Multipart uploads with a size limit and the CSRF token checked first: the token must
//! be the form's first field, so a forged upload is refused before its files are read.

use std::collections::HashMap;

use axum::extract::Multipart;

use super::session::{csrf_ok, Ctx};
use super::{PanelError, PanelResult};

pub struct UploadedFile {
    pub field: String,
    /// The client's file name, for display and the attachment name only.
    pub name: String,
    pub bytes: Vec<u8>,
}

#[derive(Default)]
pub struct Upload {
    pub fields: HashMap<String, String>,
    pub files: Vec<UploadedFile>,
}

impl Upload {
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn file(&self, field: &str) -> Option<&UploadedFile> {
        self.files.iter().find(|f| f.field == field)
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> PanelError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        PanelError::TooLarge
    } else {
        PanelError::BadRequest(e.body_text())
    }
}

/// The body limit of an upload route whose files may total `limit` bytes: room to read
/// (and drop) an oversized upload to its end, so the client gets the 413 instead of a
/// reset connection.
pub const fn body_limit(limit: usize) -> usize {
    limit.saturating_mul(2).saturating_add(1024 * 1024)
}

/// Reads the whole form, refusing it when the token is missing or wrong, or when the
/// files together exceed `limit` bytes.
pub async fn read(ctx: &Ctx, mut multipart: Multipart, limit: usize) -> PanelResult<Upload> {
    let mut upload = Upload::default();
    let mut total = 0usize;
    let mut first = true;
    let mut too_large = false;
    loop {
        let next = multipart.next_field().await;
        let mut field = match next {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) if too_large => return Err(PanelError::TooLarge),
            Err(e) => return Err(multipart_error(e)),
        };
        let name = field.name().unwrap_or_default().to_string();
        if first {
            first = false;
            let token = if name == "csrf" {
                field.text().await.map_err(multipart_error)?
            } else {
                String::new()
            };
            if !csrf_ok(&token, ctx) {
                return Err(PanelError::Forbidden("missing or wrong form token"));
            }
            continue;
        }
        let file_name = field.file_name().map(str::to_string);
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    total += chunk.len();
                    too_large |= total > limit;
                    if !too_large {
                        bytes.extend_from_slice(&chunk);
                    }
                }
                Ok(None) => break,
                Err(_) if too_large => return Err(PanelError::TooLarge),
                Err(e) => return Err(multipart_error(e)),
            }
        }
        if too_large {
            continue;
        }
        match file_name {
            // An empty file input still sends a part, with no name and no bytes.
            Some(f) if f.is_empty() && bytes.is_empty() => {}
            Some(f) => upload.files.push(UploadedFile {
                field: name,
                name: f,
                bytes,
            }),
            None => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| PanelError::BadRequest(format!("field {name} is not text")))?;
                upload.fields.insert(name, text);
            }
        }
    }
    if first {
        return Err(PanelError::Forbidden("missing form token"));
    }
    if too_large {
        return Err(PanelError::TooLarge);
    }
    Ok(upload)
}
