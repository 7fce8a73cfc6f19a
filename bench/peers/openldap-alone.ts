import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type LdapAddFigures,
  ldapDbNoSync,
  type PeerKnobs,
  type PeerRun,
  parseLdapAdds,
} from "../server-peers.ts";
import {
  freePortRun,
  listening,
  refuseTakenPorts,
  runCommand,
  startDaemon,
  stopDaemon,
  waitReady,
  withScratchDir,
} from "./daemon.ts";

/**
 * OpenLDAP as ONE provider: the ldapts adds of openldap-mirror.sh at the bench's concurrency,
 * on a slapd set up as that script's providers are (mdb, the same schema, indexes, limits,
 * threads and fsync setting) but without syncprov, syncrepl or a second node. Its adds/s beside
 * the same adds on node 1 of the mirror is OpenLDAP's own replication tax on this machine.
 *
 * The mirror's node 1 holds the serial bulk (ldapBulk entries under ou=people) when its adds
 * run; here the same entries are loaded by slapadd before slapd starts, in about a second
 * instead of the bulk's fsynced serial adds, whose figure is not compared here.
 */

/** Debian's slapd package layout, as openldap-mirror.sh uses it. */
const slapdBinary = "/usr/sbin/slapd";
const slapaddBinary = "/usr/sbin/slapadd";
const schemaDirectory = "/etc/ldap/schema";
const moduleDirectory = "/usr/lib/ldap";
const schemas = ["core", "cosine", "inetorgperson", "nis"] as const;

const suffix = "dc=example,dc=com";
/** The rootdn and password ldap-bench.mjs binds with for its adds. */
const adminDn = `cn=admin,${suffix}`;
const adminPassword = "secret";
/** openldap-mirror.sh's providers: worker threads and the mdb map size (2 GiB). */
const slapdThreads = 16;
const mdbMaxSizeBytes = 2 * 1024 ** 3;

const slapaddLimitMs = 120_000;
const slapdReadyMs = 10_000;
/** openldap-mirror.sh waits 5 s for each slapd to stop before SIGKILL. */
const slapdStopGraceMs = 5_000;
/** ldap-bench.mjs's time cap, as openldap-mirror.sh runs it (its default), and a margin past it. */
const addsCapS = 120;
const clientGraceMs = 30_000;

/** slapd.conf of a single mdb provider: openldap-mirror.sh's provider less replication. */
export function singleProviderConfig(directory: string): string {
  return [
    ...schemas.map((schema) => `include ${schemaDirectory}/${schema}.schema`),
    `modulepath ${moduleDirectory}`,
    "moduleload back_mdb",
    `pidfile ${join(directory, "slapd.pid")}`,
    `argsfile ${join(directory, "slapd.args")}`,
    "loglevel none",
    "sizelimit unlimited",
    `threads ${slapdThreads}`,
    "",
    "database mdb",
    `suffix "${suffix}"`,
    `rootdn "${adminDn}"`,
    `rootpw ${adminPassword}`,
    `directory ${join(directory, "db")}`,
    `maxsize ${mdbMaxSizeBytes}`,
    ...(ldapDbNoSync ? ["dbnosync"] : []),
    "index objectClass eq",
    "index uid eq",
    "index cn eq",
    // slapd stamps every entry with entryCSN and entryUUID with or without syncprov, so the
    // providers' indexes on them cost an add here too.
    "index entryCSN,entryUUID eq",
    `limits dn.exact="${adminDn}" size=unlimited time=unlimited`,
    "",
  ].join("\n");
}

/** The suffix, ou=people, and openldap-mirror.sh's bulk users user00000.. with the same attributes. */
export function bulkLdif(entries: number): string {
  const blocks = [
    [`dn: ${suffix}`, "objectClass: dcObject", "objectClass: organization", "dc: example", "o: Example"],
    [`dn: ou=people,${suffix}`, "objectClass: organizationalUnit", "ou: people"],
  ];
  for (let index = 0; index < entries; index++) {
    const serial = String(index).padStart(5, "0");
    const uid = `user${serial}`;
    blocks.push([
      `dn: uid=${uid},ou=people,${suffix}`,
      "objectClass: inetOrgPerson",
      `uid: ${uid}`,
      `cn: User ${serial}`,
      `sn: ${serial}`,
      "givenName: User",
      `mail: ${uid}@example.com`,
      `employeeNumber: ${index}`,
    ]);
  }
  return `${blocks.map((block) => block.join("\n")).join("\n\n")}\n`;
}

/** ldapts adds/s at the bench's concurrency on a single provider. */
export async function runLdapAlone(home: string, knobs: PeerKnobs): Promise<PeerRun<LdapAddFigures>> {
  try {
    const port = (await freePortRun(1)) + 1;
    return await withScratchDir("plexus-bench-ldap-alone-", async (directory) => {
      const config = join(directory, "slapd.conf");
      const ldif = join(directory, "bulk.ldif");
      mkdirSync(join(directory, "db"));
      writeFileSync(config, singleProviderConfig(directory));
      writeFileSync(ldif, bulkLdif(knobs.ldapBulk));
      // -q: no consistency checks while loading, which a fresh database of our own LDIF does not need.
      await runCommand(slapaddBinary, ["-q", "-f", config, "-l", ldif], { limitMs: slapaddLimitMs });
      await refuseTakenPorts([port]);
      const url = `ldap://127.0.0.1:${port}`;
      // -d 0 keeps slapd in the foreground, so the PID we hold is the server's.
      const slapd = startDaemon("slapd", slapdBinary, ["-d", "0", "-h", `${url}/`, "-f", config]);
      try {
        await waitReady(slapd, () => listening(port), slapdReadyMs);
        const args = ["add", url, String(knobs.concurrency), String(knobs.ldapAdds), "0", String(addsCapS)];
        const output = await runCommand(process.execPath, [join(home, "ldap-bench.mjs"), ...args], {
          cwd: home,
          limitMs: addsCapS * 1000 + clientGraceMs,
        });
        return { ok: true, figures: parseLdapAdds(output, knobs), output };
      } finally {
        await stopDaemon(slapd, slapdStopGraceMs);
      }
    });
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}
