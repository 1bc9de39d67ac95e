//! The export report's words, one table per language.
//!
//! Everything a reader sees that is not their own data comes from here, so a new language is
//! one more [`Strings`] value and one more column in [`TABLES`], [`COLUMNS`] and [`TERMS`]. The
//! server's own descriptions of each table and field (from the privacy manifest) stay in
//! English: the page says so in the languages that need it.

/// A language the report is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Ar,
    Ms,
}

/// A language code the report has no words for.
#[derive(Debug, thiserror::Error)]
#[error("unknown report language {0:?}: expected en, ar or ms")]
pub struct UnknownLang(pub String);

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Ar, Lang::Ms];

    /// The BCP 47 code, as written in `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ar => "ar",
            Lang::Ms => "ms",
        }
    }

    /// The writing direction, as written in `<html dir>`.
    pub fn dir(self) -> &'static str {
        match self {
            Lang::Ar => "rtl",
            Lang::En | Lang::Ms => "ltr",
        }
    }

    /// The language a POSIX locale (a `LANG` value such as `ar_AE.UTF-8`) asks for: Arabic or
    /// Malay if it starts with `ar` or `ms`, English for anything else, including nothing.
    pub fn from_locale(locale: Option<&str>) -> Lang {
        match locale.map(str::to_ascii_lowercase) {
            Some(l) if l.starts_with("ar") => Lang::Ar,
            Some(l) if l.starts_with("ms") => Lang::Ms,
            _ => Lang::En,
        }
    }

    pub(super) fn strings(self) -> &'static Strings {
        match self {
            Lang::En => &EN,
            Lang::Ar => &AR,
            Lang::Ms => &MS,
        }
    }

    fn index(self) -> usize {
        match self {
            Lang::En => 0,
            Lang::Ar => 1,
            Lang::Ms => 2,
        }
    }

    /// A table's heading, or `None` for a table this build has no words for.
    pub(super) fn table(self, table: &str) -> Option<&'static str> {
        TABLES
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, w)| w[self.index()])
    }

    /// A column's label: the table's own entry, else the one shared by that column name in
    /// every table (`*`), else `None`.
    pub(super) fn column(self, table: &str, column: &str) -> Option<&'static str> {
        let find = |t: &str| {
            COLUMNS
                .iter()
                .find(|(ct, c, _)| *ct == t && *c == column)
                .map(|(_, _, w)| w[self.index()])
        };
        find(table).or_else(|| find("*"))
    }

    /// A stored word (a consent purpose, an abuse action, who decided) in plain words.
    pub(super) fn term(self, term: &str) -> Option<&'static str> {
        TERMS
            .iter()
            .find(|(t, _)| *t == term)
            .map(|(_, w)| w[self.index()])
    }
}

impl std::str::FromStr for Lang {
    type Err = UnknownLang;

    fn from_str(s: &str) -> Result<Lang, UnknownLang> {
        Lang::ALL
            .into_iter()
            .find(|l| l.code() == s)
            .ok_or_else(|| UnknownLang(s.to_owned()))
    }
}

/// The fixed words of the page in one language.
pub(super) struct Strings {
    pub title: &'static str,
    pub heading: &'static str,
    pub intro: &'static str,
    /// Said only where the manifest's English descriptions sit in another language's page.
    pub english_note: &'static str,
    pub months: [&'static str; 12],
    /// Between a date and its time of day.
    pub date_time_sep: &'static str,
    /// Between the items of a list.
    pub list_sep: &'static str,
    pub summary: &'static str,
    pub phone: &'static str,
    pub account: &'static str,
    pub created: &'static str,
    pub last_seen: &'static str,
    pub reglock: &'static str,
    pub devices: &'static str,
    pub device: &'static str,
    pub added: &'static str,
    pub no_name: &'static str,
    pub conversations: &'static str,
    pub queued: &'static str,
    pub sent_waiting: &'static str,
    pub consents: &'static str,
    pub never_changed: &'static str,
    pub since: &'static str,
    pub disclosures: &'static str,
    pub abuse: &'static str,
    pub no_decision: &'static str,
    pub appeals: &'static str,
    pub on: &'static str,
    pub off: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub none: &'static str,
    pub details: &'static str,
    pub nothing_held: &'static str,
    pub fields: &'static str,
    pub memory: &'static str,
    pub kept: &'static str,
    pub field: &'static str,
    pub what: &'static str,
    pub about_export: &'static str,
    pub format: &'static str,
    pub manifest_version: &'static str,
    pub exported_at: &'static str,
    pub generated_at: &'static str,
    pub listed_disclosures: &'static str,
    pub other: &'static str,
    pub full_value: &'static str,
    pub opens_as: &'static str,
    /// `{n}` is the size in bytes.
    pub ciphertext: &'static str,
}

const EN: Strings = Strings {
    title: "Your Sirr data",
    heading: "What the Sirr server holds about you",
    intro: "Your messages are not here: they are end-to-end encrypted, and the server keeps them \
            only until your devices fetch them.",
    english_note: "",
    months: [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ],
    date_time_sep: ", ",
    list_sep: ", ",
    summary: "Summary",
    phone: "Phone number",
    account: "Account identifier",
    created: "Account created",
    last_seen: "Last connected",
    reglock: "Registration lock",
    devices: "Devices",
    device: "Device",
    added: "added",
    no_name: "no name",
    conversations: "Conversations the server can tie to you",
    queued: "Messages waiting for your devices",
    sent_waiting: "Messages you sent, not yet delivered to everyone",
    consents: "Consents",
    never_changed: "Off (never changed)",
    since: "since",
    disclosures: "Disclosures of your data to others",
    abuse: "Abuse standing",
    no_decision: "No decision about your account",
    appeals: "Appeals",
    on: "On",
    off: "Off",
    yes: "Yes",
    no: "No",
    none: "none",
    details: "Everything, table by table",
    nothing_held: "Nothing held.",
    fields: "What each field is",
    memory: "Handled in memory only, never stored",
    kept: "Kept",
    field: "Field",
    what: "What it is",
    about_export: "About this export",
    format: "Export format",
    manifest_version: "Privacy manifest version",
    exported_at: "Exported by the server",
    generated_at: "This page was made",
    listed_disclosures: "Disclosures sent with the export",
    other: "Other data in the export",
    full_value: "Full value",
    opens_as: "opens on your devices as",
    ciphertext: "{n} bytes of end-to-end encrypted ciphertext",
};

const AR: Strings = Strings {
    title: "بياناتك في Sirr",
    heading: "ما يحتفظ به خادم Sirr عنك",
    intro: "رسائلك ليست هنا: فهي مشفّرة تشفيرًا تامًا بين الطرفين، ولا يحتفظ بها الخادم إلا حتى \
            تستلمها أجهزتك.",
    english_note: "أوصاف الجداول والحقول الواردة من الخادم باللغة الإنجليزية.",
    months: [
        "يناير",
        "فبراير",
        "مارس",
        "أبريل",
        "مايو",
        "يونيو",
        "يوليو",
        "أغسطس",
        "سبتمبر",
        "أكتوبر",
        "نوفمبر",
        "ديسمبر",
    ],
    date_time_sep: "، ",
    list_sep: "، ",
    summary: "ملخّص",
    phone: "رقم الهاتف",
    account: "معرّف الحساب",
    created: "تاريخ إنشاء الحساب",
    last_seen: "آخر اتصال",
    reglock: "قفل التسجيل",
    devices: "الأجهزة",
    device: "جهاز",
    added: "أُضيف في",
    no_name: "بلا اسم",
    conversations: "محادثات يستطيع الخادم ربطها بك",
    queued: "رسائل بانتظار أجهزتك",
    sent_waiting: "رسائل أرسلتها ولم تصل إلى الجميع بعد",
    consents: "الموافقات",
    never_changed: "غير مفعَّل (لم يُغيَّر قط)",
    since: "منذ",
    disclosures: "إفصاحات عن بياناتك لغيرك",
    abuse: "حالة الحساب في مكافحة الإساءة",
    no_decision: "لا يوجد أي قرار بشأن حسابك",
    appeals: "الاعتراضات",
    on: "مفعَّل",
    off: "غير مفعَّل",
    yes: "نعم",
    no: "لا",
    none: "لا شيء",
    details: "كل البيانات، جدولًا جدولًا",
    nothing_held: "لا شيء محفوظ.",
    fields: "معنى كل حقل",
    memory: "تُعالَج في الذاكرة فقط ولا تُخزَّن",
    kept: "مدة الاحتفاظ",
    field: "الحقل",
    what: "ما هو",
    about_export: "عن هذا التصدير",
    format: "صيغة التصدير",
    manifest_version: "إصدار بيان الخصوصية",
    exported_at: "وقت التصدير من الخادم",
    generated_at: "وقت إنشاء هذه الصفحة",
    listed_disclosures: "إفصاحات مرفقة بالتصدير",
    other: "بيانات أخرى في التصدير",
    full_value: "القيمة كاملة",
    opens_as: "يظهر على أجهزتك باسم",
    ciphertext: "{n} بايت من نص مشفّر تشفيرًا تامًا بين الطرفين",
};

const MS: Strings = Strings {
    title: "Data Sirr anda",
    heading: "Apa yang disimpan oleh pelayan Sirr tentang anda",
    intro: "Mesej anda tiada di sini: ia disulitkan hujung ke hujung, dan pelayan menyimpannya \
            hanya sehingga peranti anda mengambilnya.",
    english_note: "Keterangan jadual dan medan daripada pelayan adalah dalam bahasa Inggeris.",
    months: [
        "Januari",
        "Februari",
        "Mac",
        "April",
        "Mei",
        "Jun",
        "Julai",
        "Ogos",
        "September",
        "Oktober",
        "November",
        "Disember",
    ],
    date_time_sep: ", ",
    list_sep: ", ",
    summary: "Ringkasan",
    phone: "Nombor telefon",
    account: "Pengecam akaun",
    created: "Akaun dicipta",
    last_seen: "Kali terakhir disambungkan",
    reglock: "Kunci pendaftaran",
    devices: "Peranti",
    device: "Peranti",
    added: "ditambah",
    no_name: "tiada nama",
    conversations: "Perbualan yang boleh dikaitkan oleh pelayan dengan anda",
    queued: "Mesej yang menunggu peranti anda",
    sent_waiting: "Mesej yang anda hantar, belum sampai kepada semua",
    consents: "Persetujuan",
    never_changed: "Mati (tidak pernah diubah)",
    since: "sejak",
    disclosures: "Pendedahan data anda kepada pihak lain",
    abuse: "Status penyalahgunaan",
    no_decision: "Tiada keputusan tentang akaun anda",
    appeals: "Rayuan",
    on: "Hidup",
    off: "Mati",
    yes: "Ya",
    no: "Tidak",
    none: "tiada",
    details: "Semua data, jadual demi jadual",
    nothing_held: "Tiada apa-apa disimpan.",
    fields: "Maksud setiap medan",
    memory: "Diproses dalam memori sahaja, tidak pernah disimpan",
    kept: "Disimpan",
    field: "Medan",
    what: "Apakah ia",
    about_export: "Tentang eksport ini",
    format: "Format eksport",
    manifest_version: "Versi manifes privasi",
    exported_at: "Dieksport oleh pelayan",
    generated_at: "Halaman ini dibuat",
    listed_disclosures: "Pendedahan yang disertakan bersama eksport",
    other: "Data lain dalam eksport",
    full_value: "Nilai penuh",
    opens_as: "dibuka pada peranti anda sebagai",
    ciphertext: "{n} bait teks sifir yang disulitkan hujung ke hujung",
};

/// Table headings: English, Arabic, Malay.
const TABLES: &[(&str, [&str; 3])] = &[
    ("accounts", ["Account", "الحساب", "Akaun"]),
    ("devices", ["Devices", "الأجهزة", "Peranti"]),
    (
        "verifications",
        [
            "Phone number verifications",
            "عمليات التحقق من رقم الهاتف",
            "Pengesahan nombor telefon",
        ],
    ),
    (
        "queue",
        [
            "Messages waiting for delivery",
            "رسائل بانتظار التسليم",
            "Mesej yang menunggu penghantaran",
        ],
    ),
    (
        "payloads",
        ["Stored messages", "الرسائل المخزّنة", "Mesej yang disimpan"],
    ),
    (
        "key_packages",
        ["Published keys", "المفاتيح المنشورة", "Kunci yang diterbitkan"],
    ),
    (
        "device_lists",
        [
            "Approved device list",
            "قائمة الأجهزة المعتمدة",
            "Senarai peranti yang diluluskan",
        ],
    ),
    ("conversations", ["Conversations", "المحادثات", "Perbualan"]),
    (
        "reported_messages",
        [
            "Reported messages",
            "الرسائل المبلَّغ عنها",
            "Mesej yang dilaporkan",
        ],
    ),
    (
        "disclosures",
        ["Disclosure ledger", "سجل الإفصاحات", "Lejar pendedahan"],
    ),
    (
        "consents",
        ["Consent history", "سجل الموافقات", "Sejarah persetujuan"],
    ),
    (
        "abuse_decisions",
        [
            "Abuse decisions",
            "قرارات مكافحة الإساءة",
            "Keputusan penyalahgunaan",
        ],
    ),
    ("appeals", ["Appeals", "الاعتراضات", "Rayuan"]),
];

/// Column labels, by (table, column); `*` applies to that column name in every table.
const COLUMNS: &[(&str, &str, [&str; 3])] = &[
    ("*", "account", ["Account", "الحساب", "Akaun"]),
    ("*", "id", ["Number", "الرقم", "Nombor"]),
    ("*", "device", ["Device", "الجهاز", "Peranti"]),
    ("*", "at_ms", ["When", "متى", "Bila"]),
    ("*", "expires_at", ["Expires", "ينتهي في", "Tamat pada"]),
    ("*", "seq", ["Number in order", "الرقم التسلسلي", "Nombor urutan"]),
    (
        "*",
        "phone_key",
        [
            "Phone number hash",
            "تجزئة رقم الهاتف",
            "Cincangan nombor telefon",
        ],
    ),
    (
        "accounts",
        "id",
        ["Account identifier", "معرّف الحساب", "Pengecam akaun"],
    ),
    (
        "accounts",
        "created_day",
        ["Created on", "تاريخ الإنشاء", "Dicipta pada"],
    ),
    (
        "accounts",
        "next_device",
        [
            "Next device number",
            "رقم الجهاز التالي",
            "Nombor peranti seterusnya",
        ],
    ),
    (
        "accounts",
        "last_seen_day",
        ["Last connected on", "آخر اتصال", "Kali terakhir disambungkan"],
    ),
    (
        "accounts",
        "access_key_hash",
        [
            "Delivery token hash",
            "تجزئة رمز التسليم",
            "Cincangan token penghantaran",
        ],
    ),
    (
        "accounts",
        "reglock_hash",
        [
            "Registration lock PIN hash",
            "تجزئة رمز قفل التسجيل",
            "Cincangan PIN kunci pendaftaran",
        ],
    ),
    (
        "accounts",
        "reglock_failures",
        [
            "Wrong PIN attempts",
            "محاولات رمز خاطئة",
            "Percubaan PIN yang salah",
        ],
    ),
    (
        "devices",
        "key",
        ["Internal number", "رقم داخلي", "Nombor dalaman"],
    ),
    (
        "devices",
        "device",
        ["Device number", "رقم الجهاز", "Nombor peranti"],
    ),
    (
        "devices",
        "sealed_name",
        [
            "Device name (encrypted)",
            "اسم الجهاز (مشفّر)",
            "Nama peranti (disulitkan)",
        ],
    ),
    (
        "devices",
        "secret_hash",
        ["Credential hash", "تجزئة بيانات الاعتماد", "Cincangan kelayakan"],
    ),
    (
        "devices",
        "created_day",
        ["Added on", "تاريخ الإضافة", "Ditambah pada"],
    ),
    (
        "verifications",
        "code_hash",
        ["Code hash", "تجزئة الرمز", "Cincangan kod"],
    ),
    (
        "verifications",
        "attempts",
        ["Wrong codes tried", "رموز خاطئة مجرَّبة", "Kod salah dicuba"],
    ),
    (
        "queue",
        "seq",
        [
            "Position in queue",
            "الترتيب في الطابور",
            "Kedudukan dalam baris gilir",
        ],
    ),
    (
        "queue",
        "payload_id",
        [
            "Stored message number",
            "رقم الرسالة المخزّنة",
            "Nombor mesej yang disimpan",
        ],
    ),
    (
        "payloads",
        "id",
        ["Internal number", "رقم داخلي", "Nombor dalaman"],
    ),
    (
        "payloads",
        "message_id",
        ["Message identifier", "معرّف الرسالة", "Pengecam mesej"],
    ),
    (
        "payloads",
        "sender_account",
        ["Sending account", "الحساب المرسِل", "Akaun penghantar"],
    ),
    (
        "payloads",
        "sender_device",
        ["Sending device", "الجهاز المرسِل", "Peranti penghantar"],
    ),
    (
        "payloads",
        "server_ts",
        [
            "Received by the server",
            "وقت استلام الخادم",
            "Diterima oleh pelayan",
        ],
    ),
    (
        "payloads",
        "payload",
        ["Message (encrypted)", "الرسالة (مشفّرة)", "Mesej (disulitkan)"],
    ),
    (
        "payloads",
        "expires_at",
        ["Deleted at", "يُحذف في", "Dipadam pada"],
    ),
    (
        "payloads",
        "franking",
        ["Report commitment", "التزام الإبلاغ", "Komitmen pelaporan"],
    ),
    (
        "key_packages",
        "id",
        ["Internal number", "رقم داخلي", "Nombor dalaman"],
    ),
    (
        "key_packages",
        "last_resort",
        ["Fallback key", "مفتاح احتياطي", "Kunci sandaran"],
    ),
    (
        "key_packages",
        "bytes",
        ["Public keys", "المفاتيح العامة", "Kunci awam"],
    ),
    ("device_lists", "version", ["Version", "الإصدار", "Versi"]),
    (
        "device_lists",
        "list",
        [
            "Signed device list",
            "قائمة الأجهزة الموقَّعة",
            "Senarai peranti yang ditandatangani",
        ],
    ),
    (
        "conversations",
        "id",
        ["Conversation identifier", "معرّف المحادثة", "Pengecam perbualan"],
    ),
    (
        "conversations",
        "epoch",
        ["Key changes", "تغييرات المفاتيح", "Perubahan kunci"],
    ),
    (
        "conversations",
        "member_hash",
        [
            "Membership token hash",
            "تجزئة رمز العضوية",
            "Cincangan token keahlian",
        ],
    ),
    (
        "conversations",
        "used_day",
        ["Last used on", "آخر استخدام", "Kali terakhir digunakan"],
    ),
    (
        "reported_messages",
        "hash",
        ["Report hash", "تجزئة البلاغ", "Cincangan laporan"],
    ),
    (
        "reported_messages",
        "expires_at",
        ["Report window ends", "نهاية مهلة البلاغ", "Tempoh laporan tamat"],
    ),
    (
        "disclosures",
        "seq",
        ["Entry number", "رقم القيد", "Nombor entri"],
    ),
    (
        "disclosures",
        "recipient",
        ["Given to", "سُلِّمت إلى", "Diberikan kepada"],
    ),
    (
        "disclosures",
        "what",
        ["What and why", "ماذا ولماذا", "Apa dan mengapa"],
    ),
    (
        "disclosures",
        "prev_hash",
        [
            "Previous entry's hash",
            "تجزئة القيد السابق",
            "Cincangan entri sebelumnya",
        ],
    ),
    (
        "disclosures",
        "hash",
        ["Entry hash", "تجزئة القيد", "Cincangan entri"],
    ),
    (
        "consents",
        "seq",
        ["Change number", "رقم التغيير", "Nombor perubahan"],
    ),
    (
        "consents",
        "purpose",
        ["Use of your data", "استخدام بياناتك", "Penggunaan data anda"],
    ),
    ("consents", "granted", ["Turned on", "مفعَّل", "Dihidupkan"]),
    (
        "abuse_decisions",
        "id",
        ["Decision number", "رقم القرار", "Nombor keputusan"],
    ),
    ("abuse_decisions", "action", ["Decision", "القرار", "Keputusan"]),
    ("abuse_decisions", "reasons", ["Signals", "المؤشرات", "Isyarat"]),
    (
        "abuse_decisions",
        "by",
        ["Decided by", "صاحب القرار", "Diputuskan oleh"],
    ),
    ("appeals", "id", ["Appeal number", "رقم الاعتراض", "Nombor rayuan"]),
    (
        "appeals",
        "text",
        ["What you wrote", "ما كتبته", "Apa yang anda tulis"],
    ),
];

/// Stored words shown in plain words: consent purposes, abuse actions, who decided.
const TERMS: &[(&str, [&str; 3])] = &[
    (
        "read-receipts",
        ["Read receipts", "إشعارات القراءة", "Resit baca"],
    ),
    ("last-seen", ["Last seen", "آخر ظهور", "Kali terakhir dilihat"]),
    (
        "profile-photo",
        ["Profile photo", "صورة الملف الشخصي", "Foto profil"],
    ),
    (
        "share-number-with-businesses",
        [
            "Share my number with businesses",
            "مشاركة رقمي مع الشركات",
            "Kongsi nombor saya dengan perniagaan",
        ],
    ),
    ("allow", ["Allowed", "مسموح", "Dibenarkan"]),
    ("throttle", ["Slowed down", "مُبطَّأ", "Diperlahankan"]),
    (
        "challenge",
        ["Asked to verify", "طُلب التحقق", "Diminta pengesahan"],
    ),
    ("ban", ["Banned", "محظور", "Disekat"]),
    ("engine", ["Automatic", "آليًا", "Automatik"]),
    ("operator", ["An operator", "أحد المشغّلين", "Pengendali"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_word() {
        for lang in Lang::ALL {
            for (t, w) in TABLES {
                assert!(!w[lang.index()].is_empty(), "{t} in {lang:?}");
            }
            for (t, c, w) in COLUMNS {
                assert!(!w[lang.index()].is_empty(), "{t}.{c} in {lang:?}");
            }
            let s = lang.strings();
            assert!(s.months.iter().all(|m| !m.is_empty()));
            assert!(s.ciphertext.contains("{n}"), "{lang:?}");
            assert_eq!(lang.code().parse::<Lang>().unwrap(), lang);
        }
        assert!("fr".parse::<Lang>().is_err());
    }

    #[test]
    fn the_locale_picks_the_language() {
        assert_eq!(Lang::from_locale(Some("ar_AE.UTF-8")), Lang::Ar);
        assert_eq!(Lang::from_locale(Some("ms_MY.UTF-8")), Lang::Ms);
        assert_eq!(Lang::from_locale(Some("en_GB.UTF-8")), Lang::En);
        assert_eq!(Lang::from_locale(Some("C.UTF-8")), Lang::En);
        assert_eq!(Lang::from_locale(None), Lang::En);
    }
}
