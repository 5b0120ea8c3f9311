// Limits both ends of the agent channel must agree on.

/** Largest gRPC message either side sends or accepts: a whole state of 100,000 mailboxes fits. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
