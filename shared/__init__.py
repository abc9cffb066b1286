"""What more than one service needs: settings, ids, tokens, wire schemas, storage contracts."""
