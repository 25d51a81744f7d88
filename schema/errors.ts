/**
 * The only errors whose message reaches GraphQL clients (grafast's SafeError). Everything else is
 * masked by yoga as 'Unexpected error.' and logged in full.
 */
import { GraphQLError } from 'graphql';

export class PublicError extends GraphQLError {
  constructor(message: string, code = 'BAD_USER_INPUT') {
    super(message, { extensions: { code } });
    this.name = 'PublicError';
  }
}
