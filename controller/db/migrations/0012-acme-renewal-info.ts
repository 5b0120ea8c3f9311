import { Migration } from "@mikro-orm/migrations";

/** ACME renewal information (RFC 9773) and rate limits: per ACME certificate its ARI certificate ID,
 * the server's suggested renewal window, when to ask for it again, and until when the server told
 * us to wait (rateLimited / Retry-After). */
export class Migration0012AcmeRenewalInfo extends Migration {
  override name = "0012-acme-renewal-info";

  override up(): void {
    this.addSql(`alter table acme_certificates
      add column certificate_id text null,
      add column renewal_window_start timestamptz null,
      add column renewal_window_end timestamptz null,
      add column renewal_info_check_at timestamptz null,
      add column retry_after timestamptz null`);
  }

  override down(): void {
    this.addSql(`alter table acme_certificates
      drop column certificate_id, drop column renewal_window_start, drop column renewal_window_end,
      drop column renewal_info_check_at, drop column retry_after`);
  }
}
