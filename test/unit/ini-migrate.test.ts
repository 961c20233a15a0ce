import { describe, expect, it } from 'vitest';
import { iniSettings } from '../../builder/device/ini.ts';
import { migrateIni } from '../../builder/device/ini-migrate.ts';
import { readIni } from '../../builder/device/ini.ts';
import { XFTP_FILES_DIR, XFTP_SERVICE, relayDirs, smpService } from '../../builder/plan/layout.ts';

/**
 * A restored relay's INI was written by the simplexmq release of the backup (and then changed by that image's first
 * boot); first boot of the new image carries it into what its own release's `init` writes (device/adopt-restored.ts).
 * simplexmq reads `key = value` and `key: value` alike (docs/simplexmq-and-tor.md#ini-format), but the file must stay
 * the new release's own: its sections, comments and separators, with the relay's settings in it, and its password
 * exactly as it was (the password is part of the addresses the group already has).
 */

const smp1 = relayDirs(smpService(1));
const xftp = relayDirs(XFTP_SERVICE);
const ONION = `${'a'.repeat(56)}.onion`;
/** Two passwords as `smp-server init` makes them (base64url with padding, which has '=' in it: the separator must not be confused). */
const OLD_PASSWORD = 'b2xkLXBhc3N3b3JkLW9mLXRoZS1vbGQtcGktMDEyMzQ1Ng=';
const NEW_PASSWORD = 'bmV3LXJhbmRvbS1wYXNzd29yZC10aGF0LWluaXQtbWFkZQ=';

/** The lines of `text` that set something or open a section, as simplexmq's reader sees them (comments and blanks left out). */
const meaningful = (text: string) => text.split('\n').filter((l) => l.trim() && !/^\s*[#;]/.test(l));

describe('migrateIni: an old INI carried into the new release\'s template', () => {
  const template = [
    '[STORE_LOG]',
    '# Log is compacted on start.',
    'enable = off',
    'expire_messages_days = 21',
    '# prometheus_interval = 300',
    '',
    '[AUTH]',
    'new_queues = on',
    `create_password = ${NEW_PASSWORD}`,
    '',
    '[TRANSPORT]',
    `host = ${ONION}`,
    'port = 5223,443',
    'websockets = off',
    '',
  ].join('\n');

  it('puts every old value the template knows into the template, in the template\'s place and order, and reports what it dropped and added', () => {
    const old = [
      '[STORE_LOG]',
      'enable = on',
      'expire_messages_days = 7',
      'prometheus_interval = 60',
      // A key this release no longer has, in a section it still has, and a section it no longer has at all.
      'store_msgs_journal = on',
      '',
      '[AUTH]',
      'new_queues = off',
      `create_password = ${OLD_PASSWORD}`,
      '',
      '[TRANSPORT]',
      `host = ${ONION}`,
      'port = 5301',
      '',
      '[GONE]',
      'something = 1',
      '',
    ].join('\n');
    const migrated = migrateIni(old, template);
    expect(migrated.text).toBe(
      [
        '[STORE_LOG]',
        '# Log is compacted on start.',
        'enable = on',
        'expire_messages_days = 7',
        // Commented out in the template: set on that very line, not appended.
        'prometheus_interval = 60',
        '',
        '[AUTH]',
        'new_queues = off',
        `create_password = ${OLD_PASSWORD}`,
        '',
        '[TRANSPORT]',
        `host = ${ONION}`,
        'port = 5301',
        'websockets = off',
        '',
      ].join('\n'),
    );
    expect(migrated.dropped).toEqual(['STORE_LOG.store_msgs_journal', 'GONE.something']);
    // websockets is set by the template and absent from the old file: it keeps the new release's default, and is said.
    expect(migrated.added).toEqual(['TRANSPORT.websockets = off']);
  });

  it("keeps the template's separator, `key: value` or `key = value`, whichever the old file used", () => {
    // A 6.5 INI (`=`) into a release that writes `key: value` (6.4.x, or a newer one's section): simplexmq's reader
    // (ini 0.4.1) loses a value's first character after `key:` without a space, so the space matters too.
    const colonTemplate = ['[STORE_LOG]', 'enable: off', 'expire_messages_days: 21', '', '[TRANSPORT]', 'port: 5223,443', '# control_port: 5224', ''].join('\n');
    const old = ['[STORE_LOG]', 'enable = on', 'expire_messages_days = 7', '', '[TRANSPORT]', 'port = 5301', 'control_port = 5224', ''].join('\n');
    const migrated = migrateIni(old, colonTemplate);
    expect(migrated.text).toBe(['[STORE_LOG]', 'enable: on', 'expire_messages_days: 7', '', '[TRANSPORT]', 'port: 5301', 'control_port: 5224', ''].join('\n'));
    // And the other way round.
    const equalsTemplate = colonTemplate.replaceAll(': ', ' = ');
    const oldColons = old.replaceAll(' = ', ': ');
    expect(migrateIni(oldColons, equalsTemplate).text).toBe(['[STORE_LOG]', 'enable = on', 'expire_messages_days = 7', '', '[TRANSPORT]', 'port = 5301', 'control_port = 5224', ''].join('\n'));
  });

  it("keeps a relay without a password open: the template's new password is commented out, and not reported as added", () => {
    const old = ['[STORE_LOG]', 'enable = on', '', '[AUTH]', 'new_queues = on', '# create_password = password to create new queues', '', '[TRANSPORT]', 'port = 5301', ''].join('\n');
    const migrated = migrateIni(old, template);
    expect(readIni(migrated.text, 'AUTH', 'create_password')).toBeUndefined();
    // The line is still there, as a comment: the template's own comments and order stay.
    expect(migrated.text).toContain(`# create_password = ${NEW_PASSWORD}`);
    expect(migrated.text).not.toMatch(/^create_password/m);
    expect(migrated.added).not.toContainEqual(expect.stringContaining('create_password'));
    // The same with a `key: value` template (the commenting must not depend on the separator).
    const colon = migrateIni(old, template.replaceAll(' = ', ': '));
    expect(readIni(colon.text, 'AUTH', 'create_password')).toBeUndefined();
    expect(colon.text).toContain(`# create_password: ${NEW_PASSWORD}`);
  });

  it('a password the old file had replaces the one the template\'s init made up, also where the template has it commented out (XFTP)', () => {
    const xftpTemplate = ['[AUTH]', 'new_files = on', '# create_password =', '', '[TRANSPORT]', 'port = 443', ''].join('\n');
    const old = ['[AUTH]', 'new_files = on', `create_password = ${OLD_PASSWORD}`, '', '[TRANSPORT]', 'port = 5443', ''].join('\n');
    const migrated = migrateIni(old, xftpTemplate);
    expect(readIni(migrated.text, 'AUTH', 'create_password')).toBe(OLD_PASSWORD);
    expect(meaningful(migrated.text)).toEqual(['[AUTH]', 'new_files = on', `create_password = ${OLD_PASSWORD}`, '[TRANSPORT]', 'port = 5443']);
    expect(migrateIni(old.replace(OLD_PASSWORD, 'x'), template).text).toContain('create_password = x\n');
    expect(readIni(migrateIni(old, template).text, 'AUTH', 'create_password')).toBe(OLD_PASSWORD);
  });

  it('reads settings by section: a key of one section never sets the same key of another', () => {
    const old = ['[STORE_LOG]', 'enable = on', ''].join('\n');
    const withNames = `${template}\n[NAMES]\nenable = off\n`;
    const migrated = migrateIni(old, withNames);
    expect(readIni(migrated.text, 'STORE_LOG', 'enable')).toBe('on');
    expect(readIni(migrated.text, 'NAMES', 'enable')).toBe('off');
    expect(iniSettings(migrated.text).filter((s) => s.key === 'enable')).toEqual([
      { section: 'STORE_LOG', key: 'enable', value: 'on' },
      { section: 'NAMES', key: 'enable', value: 'off' },
    ]);
  });
});

/**
 * Real history: what simplexmq's `init` wrote in each release (src/Simplex/Messaging/Server/Main/Init.hs
 * `iniFileContent`, src/Simplex/FileTransfer/Server/Main.hs; most explanatory comments trimmed), with the lines a
 * simplex-pi first boot changed (device/ini.ts applyIni writes `key = value`, so an old file mixes separators).
 * 6.4.x writes `key: value`; 6.5.0 switched to `key = value` (commit 1e1f897c7); XFTP's [INFORMATION] and [WEB]
 * came with 6.5; simplexmq master (7.x) adds a [NAMES] section written `enable: off`
 * (docs/simplexmq-and-tor.md#ini-format, #ini-sections; test/fixtures/standin/standin.js namesSection).
 */
const SMP_64 = `[INFORMATION]
# AGPLv3 license requires that you make any source code modifications
# available to the end users of the server.
# source_code: URI

# Server location and operator.
# server_country: ISO-3166 2-letter code
# operator: entity (organization or person name)
# website: 

# Hosting type can be \`virtual\`, \`dedicated\`, \`colocation\`, \`owned\`
hosting_type: virtual

[STORE_LOG]
# Use \`enable: on\` to use append-only log to preserve and restore queue records on restart.
enable: on

store_queues: memory
# db_connection: postgresql://smp@/smp_server_store
# db_schema: smp_server
# db_pool_size: 10

# db_store_log: off

db_deleted_ttl: 21

store_messages: memory

restore_messages: on

# Messages and notifications expiration periods.
expire_messages_days = 14
expire_messages_on_start: on
expire_ntfs_hours: 24

log_stats: off

# prometheus_interval: 300

[AUTH]
new_queues: on

# smp://fingerprint:password@host1,host2
create_password: ${OLD_PASSWORD}

# control_port_admin_password: 
# control_port_user_password: 

[TRANSPORT]
# Host is only used to print server address on start.
host: ${ONION}
port = 5301
log_tls_errors: off

# Use \`websockets: 443\` to run websockets server in addition to plain TLS.
websockets = off
# control_port: 5224

[PROXY]
# \`host_mode\` can be 'public' (default) or 'onion'.
host_mode = onion
# required_host_mode: off

# own_server_domains: 

socks_proxy = 127.0.0.1:9050

socks_mode = always

# client_concurrency: 32

[INACTIVE_CLIENTS]
disconnect: on
ttl: 21600
check_interval: 3600

[WEB]
static_path: ${smp1.logPath}/www

# http: 8000

# https: 443
# cert: ${smp1.cfgPath}/web.crt
# key: ${smp1.cfgPath}/web.key
`;

/** What 6.5's init writes for the same relay on the new card, before first boot changes anything. */
const SMP_65_TEMPLATE = `[INFORMATION]
# AGPLv3 license requires that you make any source code modifications
# available to the end users of the server.
# source_code = URI

# Server location and operator.
# server_country = ISO-3166 2-letter code
# operator = entity (organization or person name)
# website = 

# Hosting type can be \`virtual\`, \`dedicated\`, \`colocation\`, \`owned\`
hosting_type = virtual

[STORE_LOG]
# Use \`enable = on\` to use append-only log to preserve and restore queue records on restart.
enable = on

store_queues = memory
# db_connection = postgresql://smp@/smp_server_store
# db_schema = smp_server
# db_pool_size = 10

# db_store_log = off

# db_deleted_ttl = 21

store_messages = memory

restore_messages = on

# Messages and notifications expiration periods.
expire_messages_days = 21
expire_messages_on_start = on
expire_messages_on_send = off
expire_ntfs_hours = 24

log_stats = off

# prometheus_interval = 60

[AUTH]
new_queues = on

# smp://fingerprint:password@host1,host2
create_password = ${NEW_PASSWORD}

# control_port_admin_password = 
# control_port_user_password = 

# daily_block_queue_quota = 20

[TRANSPORT]
# Host is only used to print server address on start.
host = ${ONION}
port = 5223,443
log_tls_errors = off

# Use \`websockets = 443\` to run websockets server in addition to plain TLS.
websockets = off
# control_port = 5224

[PROXY]
# \`host_mode\` can be 'public' (default) or 'onion'.
# host_mode = public
# required_host_mode = off

# own_server_domains = 

# socks_proxy = localhost:9050

# socks_mode = onion

# client_concurrency = 32

[INACTIVE_CLIENTS]
disconnect = on
ttl = 21600
check_interval = 3600

[WEB]
static_path = ${smp1.logPath}/www

# http = 8000

# https = 443
# cert = ${smp1.cfgPath}/web.crt
# key = ${smp1.cfgPath}/web.key
`;

const XFTP_64 = `[STORE_LOG]
# This option enables saving memory to append only log,
# and restoring it when the server is started.
enable: on

# Expire files after the specified number of hours.
expire_files_hours = 48

log_stats: off

[AUTH]
new_files: on

# xftp://fingerprint:password@host1,host2
create_password = ${OLD_PASSWORD}

[TRANSPORT]
# host is only used to print server address on start
host: ${ONION}
port = 5443
log_tls_errors: off
# control_port: 5226

[FILES]
path: ${XFTP_FILES_DIR}
storage_quota: 10gb

[INACTIVE_CLIENTS]
# TTL and interval to check inactive clients
disconnect: off
# ttl: 21600
# check_interval: 3600
`;

const XFTP_65_TEMPLATE = `[INFORMATION]
# source_code =

[STORE_LOG]
enable = on
store_files = memory
expire_files_hours = 48
log_stats = off

[AUTH]
new_files = on
# create_password =

[TRANSPORT]
host = ${ONION}
port = 443
log_tls_errors = off
# control_port = 5226

[FILES]
path = ${XFTP_FILES_DIR}
storage_quota = 10gb

[INACTIVE_CLIENTS]
disconnect = off

[WEB]
static_path = ${xftp.logPath}/www
`;

describe('migrateIni across real simplexmq releases', () => {
  it('SMP 6.4 (`key: value`, with first boot\'s `key = value` lines) into 6.5\'s template: every setting kept, written the 6.5 way', () => {
    const migrated = migrateIni(SMP_64, SMP_65_TEMPLATE);
    // Every line that sets something is written `key = value`, as 6.5's own are.
    for (const line of meaningful(migrated.text).filter((l) => !l.startsWith('['))) expect(line).toMatch(/^[a-z_]+ = /);
    // The comments are 6.5's (not one of 6.4's `# key: value` comments is left).
    expect(migrated.text).not.toMatch(/^# [a-z_]+: /m);
    expect(migrated.text).toContain('# Use `enable = on` to use append-only log');
    // Each setting has the old relay's value, whichever separator the old line had.
    const value = (section: string, key: string) => readIni(migrated.text, section, key);
    expect(value('AUTH', 'create_password')).toBe(OLD_PASSWORD);
    expect(value('TRANSPORT', 'port')).toBe('5301');
    expect(value('TRANSPORT', 'host')).toBe(ONION);
    expect(value('PROXY', 'socks_proxy')).toBe('127.0.0.1:9050');
    expect(value('PROXY', 'socks_mode')).toBe('always');
    expect(value('PROXY', 'host_mode')).toBe('onion');
    expect(value('STORE_LOG', 'expire_messages_days')).toBe('14');
    // Set in 6.4, only a comment in 6.5's template: the old setting stays set (on the template's own line).
    expect(value('STORE_LOG', 'db_deleted_ttl')).toBe('21');
    expect(migrated.text).toContain('\ndb_deleted_ttl = 21\n');
    expect(migrated.text).not.toContain('# db_deleted_ttl');
    // Everything the old file set is set, to the same value, and nothing else but what 6.5 adds.
    const old = iniSettings(SMP_64).map((s) => `${s.section}.${s.key} = ${s.value}`);
    const now = iniSettings(migrated.text).map((s) => `${s.section}.${s.key} = ${s.value}`);
    expect(now.filter((s) => !old.includes(s))).toEqual(migrated.added);
    expect(old.filter((s) => !now.includes(s))).toEqual([]);
    expect(migrated.added).toEqual(['STORE_LOG.expire_messages_on_send = off']);
    expect(migrated.dropped).toEqual([]);
  });

  it('XFTP 6.4 into 6.5: gains [INFORMATION] and [WEB], keeps the upload password on the template\'s commented line', () => {
    const migrated = migrateIni(XFTP_64, XFTP_65_TEMPLATE);
    expect(meaningful(migrated.text)).toEqual([
      '[INFORMATION]',
      '[STORE_LOG]',
      'enable = on',
      'store_files = memory',
      'expire_files_hours = 48',
      'log_stats = off',
      '[AUTH]',
      'new_files = on',
      `create_password = ${OLD_PASSWORD}`,
      '[TRANSPORT]',
      `host = ${ONION}`,
      'port = 5443',
      'log_tls_errors = off',
      '[FILES]',
      `path = ${XFTP_FILES_DIR}`,
      'storage_quota = 10gb',
      '[INACTIVE_CLIENTS]',
      'disconnect = off',
      '[WEB]',
      `static_path = ${xftp.logPath}/www`,
    ]);
    expect(migrated.added).toEqual(['STORE_LOG.store_files = memory', `WEB.static_path = ${xftp.logPath}/www`]);
    expect(migrated.dropped).toEqual([]);
  });

  it('SMP 6.5 into a template with a new [NAMES] section written `enable: off` (simplexmq master): the section stays as master wrote it', () => {
    // The 6.5 file as it runs on the Pi: 6.5's template with first boot's settings.
    const smp65 = SMP_65_TEMPLATE.replace(`create_password = ${NEW_PASSWORD}`, `create_password = ${OLD_PASSWORD}`)
      .replace('port = 5223,443', 'port = 5301')
      .replace('# socks_proxy = localhost:9050', 'socks_proxy = 127.0.0.1:9050')
      .replace('# socks_mode = onion', 'socks_mode = always');
    const master = `${SMP_65_TEMPLATE}\n[NAMES]\nenable: off\n`;
    const migrated = migrateIni(smp65, master);
    expect(migrated.text.endsWith('\n[NAMES]\nenable: off\n')).toBe(true);
    // STORE_LOG's `enable = on` does not reach [NAMES]'s enable.
    expect(readIni(migrated.text, 'NAMES', 'enable')).toBe('off');
    expect(readIni(migrated.text, 'STORE_LOG', 'enable')).toBe('on');
    expect(readIni(migrated.text, 'AUTH', 'create_password')).toBe(OLD_PASSWORD);
    expect(readIni(migrated.text, 'TRANSPORT', 'port')).toBe('5301');
    expect(readIni(migrated.text, 'PROXY', 'socks_mode')).toBe('always');
    expect(migrated.added).toEqual(['NAMES.enable = off']);
    expect(migrated.dropped).toEqual([]);
    // Apart from those settings and the new section, the file is the template as it was.
    expect(migrated.text).toBe(
      master
        .replace(`create_password = ${NEW_PASSWORD}`, `create_password = ${OLD_PASSWORD}`)
        .replace('port = 5223,443', 'port = 5301')
        .replace('# socks_proxy = localhost:9050', 'socks_proxy = 127.0.0.1:9050')
        .replace('# socks_mode = onion', 'socks_mode = always'),
    );
  });
});
