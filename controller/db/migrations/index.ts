import type { MigrationObject } from "@mikro-orm/core";
import { Migration0001Foundation } from "./0001-foundation.ts";
import { Migration0002MailData } from "./0002-mail-data.ts";
import { Migration0003VnodeMailSettings } from "./0003-vnode-mail-settings.ts";
import { Migration0004Dkim } from "./0004-dkim.ts";
import { Migration0005HealthHistory } from "./0005-health-history.ts";
import { Migration0006DeliveryRefusal } from "./0006-delivery-refusal.ts";
import { Migration0007CaRotation } from "./0007-ca-rotation.ts";
import { Migration0008ServedCertificates } from "./0008-served-certificates.ts";
import { Migration0009VnodeManagement } from "./0009-vnode-management.ts";
import { Migration0010Acme } from "./0010-acme.ts";
import { Migration0011VnodeLeases } from "./0011-vnode-leases.ts";
import { Migration0012AcmeRenewalInfo } from "./0012-acme-renewal-info.ts";
import { Migration0013MailboxOwner } from "./0013-mailbox-owner.ts";
import { Migration0014AcmeVnodePolicy } from "./0014-acme-vnode-policy.ts";
import { Migration0015AcmeHttp01 } from "./0015-acme-http01.ts";
import { Migration0016CaKeySealed } from "./0016-ca-key-sealed.ts";
import { Migration0017FleetChangeXid } from "./0017-fleet-change-xid.ts";
import { Migration0018ControllerKekIds } from "./0018-controller-kek-ids.ts";

/** In order. Append only: a migration that has run anywhere is never edited. */
export const allMigrations: MigrationObject[] = [
  { name: "0001-foundation", class: Migration0001Foundation },
  { name: "0002-mail-data", class: Migration0002MailData },
  { name: "0003-vnode-mail-settings", class: Migration0003VnodeMailSettings },
  { name: "0004-dkim", class: Migration0004Dkim },
  { name: "0005-health-history", class: Migration0005HealthHistory },
  { name: "0006-delivery-refusal", class: Migration0006DeliveryRefusal },
  { name: "0007-ca-rotation", class: Migration0007CaRotation },
  { name: "0008-served-certificates", class: Migration0008ServedCertificates },
  { name: "0009-vnode-management", class: Migration0009VnodeManagement },
  { name: "0010-acme", class: Migration0010Acme },
  { name: "0011-vnode-leases", class: Migration0011VnodeLeases },
  { name: "0012-acme-renewal-info", class: Migration0012AcmeRenewalInfo },
  { name: "0013-mailbox-owner", class: Migration0013MailboxOwner },
  { name: "0014-acme-vnode-policy", class: Migration0014AcmeVnodePolicy },
  { name: "0015-acme-http01", class: Migration0015AcmeHttp01 },
  { name: "0016-ca-key-sealed", class: Migration0016CaKeySealed },
  { name: "0017-fleet-change-xid", class: Migration0017FleetChangeXid },
  { name: "0018-controller-kek-ids", class: Migration0018ControllerKekIds },
];
