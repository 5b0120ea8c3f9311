// An ApplyState request decoded in two steps, so a 100,000-mailbox state does not hold the event
// loop while protobuf decodes it (grpc-js calls a deserializer synchronously, before the handler):
// the deserializer decodes the envelope and every small field of the state at once and keeps the
// domains, mailboxes and aliases as their undecoded bytes; the handler decodes those in turns of
// the event loop (decodeRowsInTurns) before the state is used.
import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ApplyStateRequestSchema, type ApplyStateRequest } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import {
  DesiredStateSchema,
  MailAliasSchema,
  MailDomainSchema,
  MailboxSchema,
  type DesiredState,
} from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { invalid } from "../../common/errors.ts";
import { ROWS_PER_TURN, nextTurn } from "../lookup/turns.ts";

/** Field numbers in proto/: ApplyStateRequest.state, DesiredState.domains/mailboxes/aliases. */
const REQUEST_STATE = 2;
const ROW_FIELDS = { 3: "domains", 4: "mailboxes", 5: "aliases" } as const;
type RowField = (typeof ROW_FIELDS)[keyof typeof ROW_FIELDS];

/** The rows of a state decoded by decodeApplyStateLater, still as bytes. */
const pending = new WeakMap<DesiredState, Record<RowField, Uint8Array[]>>();

/** Splits a message's fields: `keep` gets the raw bytes (tag included) of all but `take`'s. */
function split(bytes: Uint8Array, take: (fieldNo: number, reader: BinaryReader) => boolean): Uint8Array {
  const reader = new BinaryReader(bytes);
  const rest = new BinaryWriter();
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const [fieldNo, wireType] = reader.tag();
    if (wireType === WireType.LengthDelimited && take(fieldNo, reader)) continue;
    reader.skip(wireType, fieldNo);
    rest.raw(bytes.subarray(start, reader.pos));
  }
  return rest.finish();
}

/** The grpc-js deserializer for ApplyState: everything but the state's rows, decoded at once. */
export function decodeApplyStateLater(bytes: Uint8Array): ApplyStateRequest {
  let stateBytes: Uint8Array | undefined;
  let states = 0;
  const envelope = split(bytes, (fieldNo, reader) => {
    if (fieldNo !== REQUEST_STATE) return false;
    stateBytes = reader.bytes();
    states++;
    return true;
  });
  // A state sent in parts is merged by protobuf's rules: decode it the ordinary way.
  if (states > 1) return fromBinary(ApplyStateRequestSchema, bytes);
  const request = fromBinary(ApplyStateRequestSchema, envelope);
  if (stateBytes === undefined) return request;
  const rows: Record<RowField, Uint8Array[]> = { domains: [], mailboxes: [], aliases: [] };
  const small = split(stateBytes, (fieldNo, reader) => {
    const field = ROW_FIELDS[fieldNo as keyof typeof ROW_FIELDS] as RowField | undefined;
    if (field === undefined) return false;
    rows[field].push(reader.bytes());
    return true;
  });
  const state = fromBinary(DesiredStateSchema, small);
  pending.set(state, rows);
  request.state = state;
  return request;
}

/** Decodes the rows decodeApplyStateLater left as bytes, giving the event loop a turn every slice. */
export async function decodeRowsInTurns(state: DesiredState): Promise<void> {
  const rows = pending.get(state);
  if (!rows) return; // decoded at once (another deserializer, a test)
  pending.delete(state);
  const into = async <D extends DescMessage>(schema: D, items: Uint8Array[], out: MessageShape<D>[], field: string) => {
    for (let i = 0; i < items.length; i++) {
      try {
        out.push(fromBinary(schema, items[i] as Uint8Array));
      } catch (error) {
        throw invalid(`state.${field}[${i}]`, `cannot be decoded: ${error instanceof Error ? error.message : error}`);
      }
      if ((i + 1) % ROWS_PER_TURN === 0) await nextTurn();
    }
  };
  await into(MailDomainSchema, rows.domains, state.domains, "domains");
  await into(MailboxSchema, rows.mailboxes, state.mailboxes, "mailboxes");
  await into(MailAliasSchema, rows.aliases, state.aliases, "aliases");
}
