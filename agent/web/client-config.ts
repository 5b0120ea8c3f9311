// What mail clients ask for to set themselves up: Thunderbird's autoconfig (config-v1.1.xml) and
// Outlook's Autodiscover (POX). Every value is XML-escaped even though it went through domain or
// address validation: the escaping must not depend on someone else's check.

/** Escapes text for an XML element or a double-quoted attribute. */
export function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos" }[c]};`);
}

/** Ports the vnode's daemons listen on (agent/postfix, agent/dovecot). */
export const CLIENT_PORTS = { imaps: 993, submissions: 465, submission: 587 } as const;

/** Thunderbird autoconfig: IMAP 993 SSL, SMTP 465 SSL and 587 STARTTLS, the address as user name. */
export function autoconfigXml(domain: string, mailHost: string): string {
  const d = xmlEscape(domain);
  const h = xmlEscape(mailHost);
  const server = (kind: "incomingServer" | "outgoingServer", type: string, port: number, socket: string): string =>
    [
      `    <${kind} type="${type}">`,
      `      <hostname>${h}</hostname>`,
      `      <port>${port}</port>`,
      `      <socketType>${socket}</socketType>`,
      `      <authentication>password-cleartext</authentication>`,
      `      <username>%EMAILADDRESS%</username>`,
      `    </${kind}>`,
    ].join("\n");
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<clientConfig version="1.1">`,
    `  <emailProvider id="${d}">`,
    `    <domain>${d}</domain>`,
    `    <displayName>${d}</displayName>`,
    `    <displayShortName>${d}</displayShortName>`,
    server("incomingServer", "imap", CLIENT_PORTS.imaps, "SSL"),
    server("outgoingServer", "smtp", CLIENT_PORTS.submissions, "SSL"),
    server("outgoingServer", "smtp", CLIENT_PORTS.submission, "STARTTLS"),
    `  </emailProvider>`,
    `</clientConfig>`,
    ``,
  ].join("\n");
}

/** Outlook Autodiscover (POX): IMAP 993 and SMTP 465, both SSL; LoginName is the address asked
 *  about (omitted for the static file of the web-directory mode, which cannot know it). */
export function autodiscoverXml(mailHost: string, emailAddress: string | undefined): string {
  const h = xmlEscape(mailHost);
  const login = emailAddress === undefined ? [] : [`        <LoginName>${xmlEscape(emailAddress)}</LoginName>`];
  const protocol = (type: string, port: number): string[] => [
    `      <Protocol>`,
    `        <Type>${type}</Type>`,
    `        <Server>${h}</Server>`,
    `        <Port>${port}</Port>`,
    `        <DomainRequired>off</DomainRequired>`,
    ...login,
    `        <SPA>off</SPA>`,
    `        <SSL>on</SSL>`,
    `        <AuthRequired>on</AuthRequired>`,
    `      </Protocol>`,
  ];
  return [
    `<?xml version="1.0" encoding="utf-8"?>`,
    `<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">`,
    `  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">`,
    `    <Account>`,
    `      <AccountType>email</AccountType>`,
    `      <Action>settings</Action>`,
    ...protocol("IMAP", CLIENT_PORTS.imaps),
    ...protocol("SMTP", CLIENT_PORTS.submissions),
    `    </Account>`,
    `  </Response>`,
    `</Autodiscover>`,
    ``,
  ].join("\n");
}

/** The EMailAddress of an Autodiscover request body (already size-bounded), or undefined. */
export function autodiscoverEmail(body: string): string | undefined {
  const m = /<EMailAddress>\s*([^<\s]{1,254})\s*<\/EMailAddress>/i.exec(body);
  return m?.[1];
}
