//! Letters: print-ready A4 PDFs built with krilla, fonts embedded (and
//! subset). The layout is fixed by the engine (sender block, recipient
//! address placed for a window envelope, page numbers); the words are the
//! policy's template, in a small line markup the risk team writes:
//!
//! ```text
//! > Paris, le 22 novembre 2026          right-aligned line
//! # Mise en demeure                     the subject, in bold
//! | Référence | Échéance | Montant |    a table row (the first is the header)
//! any other line                        a paragraph, wrapped to the width
//! (blank line)                          vertical space
//! ```
//!
//! PDF dates and the document id derive from the night, so a re-run writes
//! the same bytes.

use super::{debtor_name, safe_name, ActionError, Job};
use chrono::Datelike;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::{DateTime, Metadata};
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};
use krilla::Document;
use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, MetadataProvider};
use std::sync::Arc;

pub const INDEX_COLUMNS: &[&str] = &[
    "file",
    "debtor_id",
    "currency",
    "template",
    "language",
    "pages",
    "registered",
];

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 56.7; // 20 mm
const TOP: f32 = 48.0;
const BOTTOM: f32 = PAGE_H - 60.0;
/// Recipient block for a right-window envelope (C5/DL, window 110 mm from
/// the left edge, 50 mm from the top).
const WINDOW_X: f32 = 311.8;
const WINDOW_Y: f32 = 141.7;
const BODY_Y: f32 = 260.0;
const SIZE: f32 = 10.0;
const LEADING: f32 = 14.0;

/// One font file (a `.ttf`, or one face of a `.ttc`).
#[derive(Clone)]
pub struct FontFile {
    /// Mapped, not read: a CJK collection is 20 MB a face file, of which a
    /// night's letters touch a few pages.
    data: Arc<crate::FileBytes>,
    index: u32,
    font: Font,
}

impl std::fmt::Debug for FontFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FontFile(index {})", self.index)
    }
}

impl FontFile {
    /// Loads `path` or `path#index`.
    pub fn load(spec: &str, base: &std::path::Path) -> Result<FontFile, String> {
        let (path, index) = match spec.rsplit_once('#') {
            Some((p, i)) => (
                p,
                i.parse::<u32>()
                    .map_err(|_| format!("`{i}` is not a face index"))?,
            ),
            None => (spec, 0),
        };
        let path = base.join(path);
        let data = crate::FileBytes::open_random(&path)
            .map_err(|e| format!("font {}: {e}", path.display()))?;
        let data = Arc::new(data);
        FontRef::from_index(&data, index).map_err(|e| format!("font {}: {e}", path.display()))?;
        let shared: Arc<dyn AsRef<[u8]> + Send + Sync> = data.clone();
        let font = Font::new(shared.into(), index)
            .ok_or_else(|| format!("font {}: not a font krilla can embed", path.display()))?;
        Ok(FontFile { data, index, font })
    }

    /// Width of `text` at `size` points.
    fn width(&self, text: &str, size: f32) -> f32 {
        let Ok(f) = FontRef::from_index(&self.data, self.index) else {
            return text.chars().count() as f32 * size * 0.5;
        };
        let cmap = f.charmap();
        let gm = f.glyph_metrics(Size::new(size), LocationRef::default());
        text.chars()
            .map(|c| {
                cmap.map(c)
                    .and_then(|g| gm.advance_width(g))
                    .unwrap_or(size * 0.5)
            })
            .sum()
    }

    /// Whether every character of `text` has a glyph.
    pub fn covers(&self, text: &str) -> bool {
        FontRef::from_index(&self.data, self.index)
            .map(|f| {
                let cmap = f.charmap();
                text.chars()
                    .all(|c| c.is_whitespace() || cmap.map(c).is_some())
            })
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone)]
pub struct FontPair {
    pub regular: FontFile,
    pub bold: FontFile,
}

#[derive(Debug)]
pub struct LetterSettings {
    /// Templates sent by registered mail.
    pub registered: Vec<String>,
    /// Fonts by language; `default` for the others.
    pub fonts: std::collections::BTreeMap<String, FontPair>,
}

impl LetterSettings {
    fn fonts(&self, lang: &str) -> Option<&FontPair> {
        self.fonts.get(lang).or_else(|| self.fonts.get("default"))
    }
}

enum Op {
    Text {
        x: f32,
        y: f32,
        bold: bool,
        size: f32,
        text: String,
    },
    Rule {
        x: f32,
        y: f32,
        w: f32,
    },
}

/// Lays out lines and pages before drawing, so that the footer knows the
/// page count.
struct Layout<'a> {
    fonts: &'a FontPair,
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl Layout<'_> {
    fn font(&self, bold: bool) -> &FontFile {
        if bold {
            &self.fonts.bold
        } else {
            &self.fonts.regular
        }
    }

    fn text(&mut self, x: f32, y: f32, bold: bool, size: f32, text: &str) {
        self.pages.last_mut().expect("a page").push(Op::Text {
            x,
            y,
            bold,
            size,
            text: text.to_owned(),
        });
    }

    fn advance(&mut self, dy: f32) {
        self.y += dy;
        if self.y > BOTTOM {
            self.pages.push(Vec::new());
            self.y = TOP + LEADING;
        }
    }

    /// Breaks `text` into lines no wider than `width`: at spaces, or between
    /// any two characters of a script written without spaces.
    fn wrap(&self, text: &str, width: f32, bold: bool, size: f32) -> Vec<String> {
        let font = self.font(bold);
        let mut lines = Vec::new();
        let mut line = String::new();
        let mut tokens: Vec<String> = Vec::new();
        for word in text.split(' ') {
            if word.chars().any(|c| c as u32 >= 0x2E80) {
                // CJK: each character may start a line.
                let mut cur = String::new();
                for c in word.chars() {
                    if (c as u32) >= 0x2E80 {
                        if !cur.is_empty() {
                            tokens.push(std::mem::take(&mut cur));
                        }
                        tokens.push(c.to_string());
                    } else {
                        cur.push(c);
                    }
                }
                if !cur.is_empty() {
                    tokens.push(cur);
                }
                tokens.push(String::new()); // word boundary marker
            } else {
                tokens.push(word.to_owned());
                tokens.push(" ".to_owned());
            }
        }
        for t in tokens {
            if t.is_empty() {
                continue;
            }
            let candidate = format!("{line}{t}");
            if !line.trim().is_empty() && font.width(candidate.trim_end(), size) > width {
                lines.push(line.trim_end().to_owned());
                line = t.trim_start().to_owned();
            } else {
                line = candidate;
            }
        }
        if !line.trim().is_empty() {
            lines.push(line.trim_end().to_owned());
        }
        lines
    }

    fn paragraph(&mut self, text: &str, bold: bool, size: f32) {
        for l in self.wrap(text, PAGE_W - 2.0 * MARGIN, bold, size) {
            let y = self.y;
            self.text(MARGIN, y, bold, size, &l);
            self.advance(size * 1.4);
        }
    }

    fn right(&mut self, text: &str) {
        let w = self.font(false).width(text, SIZE);
        let y = self.y;
        self.text(PAGE_W - MARGIN - w, y, false, SIZE, text);
        self.advance(LEADING);
    }

    fn table(&mut self, rows: &[Vec<String>]) {
        let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
        if cols == 0 {
            return;
        }
        let width = PAGE_W - 2.0 * MARGIN;
        let col_w = width / cols as f32;
        for (r, row) in rows.iter().enumerate() {
            let bold = r == 0;
            let y = self.y;
            for (c, cell) in row.iter().enumerate() {
                // Amount-like columns (all but the first two) align right.
                let mut text = cell.clone();
                let font = self.font(bold).clone();
                while font.width(&text, SIZE) > col_w - 6.0 && text.chars().count() > 1 {
                    text.pop();
                }
                let x = if c >= 2 {
                    MARGIN + col_w * (c as f32 + 1.0) - font.width(&text, SIZE) - 3.0
                } else {
                    MARGIN + col_w * c as f32 + 3.0
                };
                self.text(x, y, bold, SIZE, &text);
            }
            if r == 0 {
                self.pages.last_mut().expect("a page").push(Op::Rule {
                    x: MARGIN,
                    y: y + 4.0,
                    w: width,
                });
            }
            self.advance(LEADING);
        }
    }
}

pub struct Letter {
    pub file: String,
    pub bytes: Vec<u8>,
    pub debtor_id: String,
    pub currency: String,
    pub template: String,
    pub language: String,
    pub pages: usize,
    pub registered: bool,
}

impl Letter {
    pub fn index_row(&self) -> [String; 7] {
        [
            self.file.clone(),
            self.debtor_id.clone(),
            self.currency.clone(),
            self.template.clone(),
            self.language.clone(),
            self.pages.to_string(),
            if self.registered { "yes" } else { "no" }.to_owned(),
        ]
    }
}

pub fn build(job: &Job<'_>) -> Result<Letter, ActionError> {
    let Job {
        messages,
        decision: d,
        debtor,
        lang,
        template,
        ctx,
        as_of,
    } = *job;
    let fail = |message: String| ActionError::Letter {
        debtor_id: debtor.id().to_string(),
        message,
    };
    let settings = messages
        .letters
        .as_ref()
        .ok_or_else(|| fail("the policy has no `letters:` section".into()))?;
    let fonts = settings
        .fonts(lang)
        .ok_or_else(|| fail(format!("no font for language `{lang}`")))?;
    let body =
        messages
            .templates
            .render(&format!("{lang}/letter/{template}.txt"), ctx, debtor.id())?;

    let mut l = Layout {
        fonts,
        pages: vec![Vec::new()],
        y: TOP + LEADING,
    };
    // Sender.
    let c = &messages.contact;
    let company = c.get("company").cloned().unwrap_or_default();
    l.text(MARGIN, TOP + LEADING, true, SIZE + 1.0, &company);
    let mut y = TOP + 2.0 * LEADING;
    for key in ["department", "address", "phone", "email"] {
        if let Some(v) = c.get(key) {
            l.text(MARGIN, y, false, SIZE - 1.0, v);
            y += LEADING - 2.0;
        }
    }
    // Recipient, in the envelope window.
    let mut y = WINDOW_Y;
    let city = format!("{} {}", debtor.postal_code(), debtor.city());
    let country = if debtor
        .country()
        .eq_ignore_ascii_case(&messages.default_country)
    {
        String::new()
    } else {
        debtor.country().to_string()
    };
    for line in [
        debtor_name(debtor),
        debtor.address_line1().to_string(),
        debtor.address_line2().to_string(),
        city.trim().to_owned(),
        country,
    ] {
        let line = crate::actions::email::header_text(&line);
        if !line.is_empty() {
            l.text(WINDOW_X, y, false, SIZE + 1.0, &line);
            y += LEADING;
        }
    }
    // Body.
    l.y = BODY_Y;
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut subject = String::new();
    for raw in body.lines() {
        let line = raw.trim_end();
        if let Some(row) = line.trim_start().strip_prefix('|') {
            let cells = row
                .trim_end_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect();
            table.push(cells);
            continue;
        }
        if !table.is_empty() {
            l.table(&std::mem::take(&mut table));
        }
        if line.trim().is_empty() {
            l.advance(LEADING * 0.6);
        } else if let Some(s) = line.strip_prefix("# ") {
            subject = s.trim().to_owned();
            l.paragraph(s.trim(), true, SIZE + 1.0);
        } else if let Some(s) = line.strip_prefix("> ") {
            l.right(s.trim());
        } else {
            l.paragraph(line.trim(), false, SIZE);
        }
    }
    if !table.is_empty() {
        l.table(&table);
    }

    // Draw.
    let seed = format!(
        "{as_of}\n{}\n{}\n{}\n{template}",
        debtor.id(),
        d.account.currency,
        d.level_after
    );
    let hash = crate::audit::sha256_bytes(seed.as_bytes());
    let mut doc = Document::new();
    let date = DateTime::new(as_of.year() as u16)
        .month(as_of.month() as u8)
        .day(as_of.day() as u8)
        .hour(6)
        .utc_offset_hour(0);
    doc.set_metadata(
        Metadata::new()
            .title(subject)
            .creator(format!("dunning {}", env!("CARGO_PKG_VERSION")))
            .language(lang.to_owned())
            .creation_date(date)
            .document_id(hash.clone()),
    );
    let pages = l.pages.len();
    for (n, ops) in l.pages.iter().enumerate() {
        let mut page = doc.start_page_with(PageSettings::from_wh(PAGE_W, PAGE_H).expect("A4"));
        let mut surface = page.surface();
        let footer = format!("{} / {}", n + 1, pages);
        let fw = fonts.regular.width(&footer, SIZE - 2.0);
        let footer_op = Op::Text {
            x: PAGE_W - MARGIN - fw,
            y: PAGE_H - 30.0,
            bold: false,
            size: SIZE - 2.0,
            text: footer,
        };
        for op in ops.iter().chain(std::iter::once(&footer_op)) {
            match op {
                Op::Text {
                    x,
                    y,
                    bold,
                    size,
                    text,
                } => {
                    let font = if *bold { &fonts.bold } else { &fonts.regular };
                    surface.draw_text(
                        Point::from_xy(*x, *y),
                        font.font.clone(),
                        *size,
                        text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Op::Rule { x, y, w } => {
                    let mut pb = PathBuilder::new();
                    if let Some(r) = Rect::from_xywh(*x, *y, *w, 0.6) {
                        pb.push_rect(r);
                    }
                    if let Some(p) = pb.finish() {
                        surface.draw_path(&p);
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    let bytes = doc.finish().map_err(|e| fail(format!("PDF: {e:?}")))?;
    Ok(Letter {
        file: format!(
            "{}.pdf",
            safe_name(debtor.id(), &d.account.currency, template)
        ),
        bytes,
        debtor_id: debtor.id().to_string(),
        currency: d.account.currency.to_string(),
        template: template.to_owned(),
        language: lang.to_owned(),
        pages,
        registered: settings.registered.iter().any(|r| r == template),
    })
}
