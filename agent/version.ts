/** The agent's version, reported to the controller at enrollment and in every Ping. */
export const AGENT_VERSION = "0.1.0";
