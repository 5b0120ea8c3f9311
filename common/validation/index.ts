// Input validation for every name that reaches a path, a Postfix/Dovecot lookup, a command line
// or the database (DESIGN rules 4 and 7). Each parser refuses bad input with
// NetservaError("invalid_argument") naming the field; none of them repairs input silently.
export * from "./domain.ts";
export * from "./local-part.ts";
export * from "./address.ts";
export * from "./alias.ts";
export * from "./quota.ts";
export * from "./names.ts";
export * from "./password.ts";
export * from "./sieve.ts";
