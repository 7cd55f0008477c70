%% @doc Locates the hordec executable that `rebar3 compile' built into this application's priv/.
-module(hordec).
-export([executable/0]).

-spec executable() -> file:filename().
executable() ->
    filename:join(code:priv_dir(hordec), "hordec").
