/** A JSON value: what records, state entries and function parameters are made of. */
export type Json = string | number | boolean | null | Json[] | { [k: string]: Json };
