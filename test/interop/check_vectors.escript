#!/usr/bin/env escript
%% check_vectors.escript VECTORS_BIN — a mix-free BEAM check of hordec-vectors, run by ctest.
%% Every line must decode with binary_to_term/2 (control term, then the message if present, nothing
%% left over), and re-encoding the decoded control term with term_to_binary(_, [{minor_version, 2}])
%% must give back exactly our bytes (our encodings are the canonical ones), except for maps, whose
%% key order the BEAM chooses. The expected values themselves are asserted in
%% elixir_client/test/control_codec_test.exs.
main([Bin]) ->
    Out = os:cmd(Bin ++ " 2>&1; echo \"exit=$?\""),
    Lines = [L || L <- string:split(Out, "\n", all), L =/= ""],
    {Vecs, ["exit=0"]} = lists:split(length(Lines) - 1, Lines),
    Fails = lists:append([check(L) || L <- Vecs]),
    [io:format(standard_error, "FAIL ~s~n", [F]) || F <- Fails],
    io:format("~b vectors, ~b failures~n", [length(Vecs), length(Fails)]),
    case {Fails, length(Vecs) > 40} of
        {[], true} -> halt(0);
        _ -> halt(1)
    end;
main(_) ->
    io:format(standard_error, "usage: check_vectors.escript path/to/hordec-vectors~n", []),
    halt(2).

check(Line) ->
    [Name, Hex] = string:split(Line, "\t"),
    <<$p, Rest/binary>> = binary:decode_hex(list_to_binary(Hex)),
    try
        {Ctrl, Used} = binary_to_term(Rest, [used]),
        <<CtrlBytes:Used/binary, Tail/binary>> = Rest,
        MsgOk = case Tail of
                    <<>> -> true;
                    _ -> {_Msg, MUsed} = binary_to_term(Tail, [used]), MUsed =:= byte_size(Tail)
                end,
        Canon = is_map_term(Ctrl) orelse term_to_binary(Ctrl, [{minor_version, 2}]) =:= CtrlBytes,
        [io_lib:format("~s: message has trailing bytes", [Name]) || not MsgOk] ++
            [io_lib:format("~s: BEAM re-encodes ~p differently", [Name, Ctrl]) || not Canon]
    catch
        C:E -> [io_lib:format("~s: binary_to_term failed: ~p:~p", [Name, C, E])]
    end.

is_map_term(T) when is_map(T) -> true;
is_map_term(_) -> false.
