// How many RSA private- and public-key operations this process has done for certificates: the
// expensive part of enrollment. Refused requests must cost none, and the tests and the
// controller's metrics check that by this count rather than by a clock.
export const signatureOperations = { verify: 0, sign: 0 };
