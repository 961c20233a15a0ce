/**
 * Time zone names. The recipe takes any name of the IANA time zone database's form; whether the zone exists is
 * up to the image's own tzdata, checked when the image is built (builder/image/zoneinfo.ts). Node's own list
 * (ICU's) is not the right judge: it calls Asia/Kolkata and Europe/Kyiv unknown, and offers Asia/Calcutta and
 * Europe/Kiev, which Debian trixie's tzdata no longer ships (they moved to tzdata-legacy).
 */

/** `Area/Location[/Sublocation]` or a single name such as UTC: letters first in each part, no dots, no `..`. */
export const TIMEZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z][A-Za-z0-9_+-]*)*$/;

/** Entries of /usr/share/zoneinfo that are not zones: `localtime` links back to /etc/localtime. */
export const NOT_ZONES = ['localtime', 'posixrules'];

/**
 * Old names and the zone each now names: every name Debian 13 (trixie) moved from tzdata to tzdata-legacy
 * (tzdata 2026f-0+deb13u1, read from the package), with the file its link points to, which trixie's tzdata has.
 * A recipe may use an old name; the image gets the current one, which Debian 12 (bookworm) has too.
 */
export const LEGACY_TIMEZONES: Readonly<Record<string, string>> = {
  'Africa/Asmera': 'Africa/Asmara',
  'America/Argentina/ComodRivadavia': 'America/Argentina/Catamarca',
  'America/Buenos_Aires': 'America/Argentina/Buenos_Aires',
  'America/Catamarca': 'America/Argentina/Catamarca',
  'America/Cordoba': 'America/Argentina/Cordoba',
  'America/Fort_Wayne': 'America/Indiana/Indianapolis',
  'America/Godthab': 'America/Nuuk',
  'America/Indianapolis': 'America/Indiana/Indianapolis',
  'America/Jujuy': 'America/Argentina/Jujuy',
  'America/Knox_IN': 'America/Indiana/Knox',
  'America/Louisville': 'America/Kentucky/Louisville',
  'America/Mendoza': 'America/Argentina/Mendoza',
  'America/Rosario': 'America/Argentina/Cordoba',
  'Antarctica/South_Pole': 'Antarctica/McMurdo',
  'Asia/Ashkhabad': 'Asia/Ashgabat',
  'Asia/Calcutta': 'Asia/Kolkata',
  'Asia/Choibalsan': 'Asia/Ulaanbaatar',
  'Asia/Chungking': 'Asia/Shanghai',
  'Asia/Dacca': 'Asia/Dhaka',
  'Asia/Katmandu': 'Asia/Kathmandu',
  'Asia/Macao': 'Asia/Macau',
  'Asia/Rangoon': 'Asia/Yangon',
  'Asia/Saigon': 'Asia/Ho_Chi_Minh',
  'Asia/Thimbu': 'Asia/Thimphu',
  'Asia/Ujung_Pandang': 'Asia/Makassar',
  'Asia/Ulan_Bator': 'Asia/Ulaanbaatar',
  'Atlantic/Faeroe': 'Atlantic/Faroe',
  'Australia/ACT': 'Australia/Sydney',
  'Australia/LHI': 'Australia/Lord_Howe',
  'Australia/NSW': 'Australia/Sydney',
  'Australia/North': 'Australia/Darwin',
  'Australia/Queensland': 'Australia/Brisbane',
  'Australia/South': 'Australia/Adelaide',
  'Australia/Tasmania': 'Australia/Hobart',
  'Australia/Victoria': 'Australia/Melbourne',
  'Australia/West': 'Australia/Perth',
  'Brazil/Acre': 'America/Rio_Branco',
  'Brazil/DeNoronha': 'America/Noronha',
  'Brazil/East': 'America/Sao_Paulo',
  'Brazil/West': 'America/Manaus',
  'CET': 'Europe/Brussels',
  'CST6CDT': 'America/Chicago',
  'Canada/Atlantic': 'America/Halifax',
  'Canada/Central': 'America/Winnipeg',
  'Canada/Eastern': 'America/Toronto',
  'Canada/Mountain': 'America/Edmonton',
  'Canada/Newfoundland': 'America/St_Johns',
  'Canada/Pacific': 'America/Vancouver',
  'Canada/Saskatchewan': 'America/Regina',
  'Canada/Yukon': 'America/Whitehorse',
  'Chile/Continental': 'America/Santiago',
  'Chile/EasterIsland': 'Pacific/Easter',
  'Cuba': 'America/Havana',
  'EET': 'Europe/Athens',
  'EST': 'America/Panama',
  'EST5EDT': 'America/New_York',
  'Egypt': 'Africa/Cairo',
  'Eire': 'Europe/Dublin',
  'Europe/Kiev': 'Europe/Kyiv',
  'Europe/Uzhgorod': 'Europe/Kyiv',
  'Europe/Zaporozhye': 'Europe/Kyiv',
  'GB': 'Europe/London',
  'GB-Eire': 'Europe/London',
  'GMT+0': 'Etc/GMT',
  'GMT-0': 'Etc/GMT',
  'GMT0': 'Etc/GMT',
  'Greenwich': 'Etc/GMT',
  'HST': 'Pacific/Honolulu',
  'Hongkong': 'Asia/Hong_Kong',
  'Iceland': 'Atlantic/Reykjavik',
  'Iran': 'Asia/Tehran',
  'Israel': 'Asia/Jerusalem',
  'Jamaica': 'America/Jamaica',
  'Japan': 'Asia/Tokyo',
  'Kwajalein': 'Pacific/Kwajalein',
  'Libya': 'Africa/Tripoli',
  'MET': 'Europe/Brussels',
  'MST': 'America/Phoenix',
  'MST7MDT': 'America/Denver',
  'Mexico/BajaNorte': 'America/Tijuana',
  'Mexico/BajaSur': 'America/Mazatlan',
  'Mexico/General': 'America/Mexico_City',
  'NZ': 'Pacific/Auckland',
  'NZ-CHAT': 'Pacific/Chatham',
  'Navajo': 'America/Denver',
  'PRC': 'Asia/Shanghai',
  'PST8PDT': 'America/Los_Angeles',
  'Pacific/Enderbury': 'Pacific/Kanton',
  'Pacific/Ponape': 'Pacific/Pohnpei',
  'Pacific/Truk': 'Pacific/Chuuk',
  'Poland': 'Europe/Warsaw',
  'Portugal': 'Europe/Lisbon',
  'ROC': 'Asia/Taipei',
  'ROK': 'Asia/Seoul',
  'Singapore': 'Asia/Singapore',
  'Turkey': 'Europe/Istanbul',
  'UCT': 'Etc/UTC',
  'US/Alaska': 'America/Anchorage',
  'US/Aleutian': 'America/Adak',
  'US/Arizona': 'America/Phoenix',
  'US/Central': 'America/Chicago',
  'US/East-Indiana': 'America/Indiana/Indianapolis',
  'US/Eastern': 'America/New_York',
  'US/Hawaii': 'Pacific/Honolulu',
  'US/Indiana-Starke': 'America/Indiana/Knox',
  'US/Michigan': 'America/Detroit',
  'US/Mountain': 'America/Denver',
  'US/Pacific': 'America/Los_Angeles',
  'US/Samoa': 'Pacific/Pago_Pago',
  'Universal': 'Etc/UTC',
  'W-SU': 'Europe/Moscow',
  'WET': 'Europe/Lisbon',
  'Zulu': 'Etc/UTC',
};

/** The name the image uses for a recipe's time zone. */
export function canonicalTimezone(name: string): string {
  return LEGACY_TIMEZONES[name] ?? name;
}

/** What to tell the user when the recipe names a zone by an old name. */
export function legacyTimezoneWarning(name: string): string | undefined {
  const current = LEGACY_TIMEZONES[name];
  return current
    ? `recipe.timezone: "${name}" is an old name of ${current}, which newer systems (Debian trixie, Raspberry Pi OS Trixie) no longer know by the old one; the image uses ${current}. Write timezone: ${current} to silence this.`
    : undefined;
}
