defmodule HordeC.ControlCodecTest do
  @moduledoc """
  The C encoders judged by the real BEAM (DESIGN.md, principle 2: never send a malformed term —
  one bad term makes the BEAM drop the whole connection).

  `hordec-vectors` (test/interop/hordec_vectors.c) prints one `name<TAB>hex` line per encoder:
  a data packet without its length, `'p', 131, Term` plus `131, Message` for messages that carry one.
  Each line must decode with `:erlang.binary_to_term/2`, equal the term written below, leave no
  bytes over, and be exactly what the BEAM itself would encode (`minor_version: 2`).

  The binary comes from `HORDEC_VECTORS_BIN` (default `../build/test/interop/hordec-vectors`).
  Self-contained on purpose: no support modules, no cluster — it only runs a program.
  """
  use ExUnit.Case, async: true

  import Bitwise

  # ---- fixed identities, mirrored from hordec_vectors.c ----------------------------------------------
  # Built from hand-written external-format bytes (list_to_pid only makes local pids).

  defp pid(node, num, serial, creation) do
    n = Atom.to_string(node)

    :erlang.binary_to_term(
      <<131, 88, 119, byte_size(n), n::binary, num::32, serial::32, creation::32>>
    )
  end

  defp ref(node, creation, words) do
    n = Atom.to_string(node)
    ws = for w <- words, into: <<>>, do: <<w::32>>

    :erlang.binary_to_term(
      <<131, 90, length(words)::16, 119, byte_size(n), n::binary, creation::32, ws::binary>>
    )
  end

  defp p1, do: pid(:vec1@host, 1, 2, 3)
  defp p2, do: pid(:vec2@host, 32767, 8191, 0xDEADBEEF)
  defp r1, do: ref(:vec1@host, 3, [0x3FFFF, 0xFFFFFFFF, 7])
  defp r2, do: ref(:vec2@host, 0xDEADBEEF, [1, 2, 3, 4, 5])
  defp msg, do: [1, "x", {:ok, -5}]
  defp reason, do: {:shutdown, "bye"}

  # name => {control term, message term or :none}
  defp expected do
    terms = %{
      "term_atom" => :hello,
      "term_atom_utf8" => :héllo,
      "term_atom_empty" => :"",
      "term_atom_interned" => :interned_atom,
      "term_atom_255" => String.to_atom(String.duplicate("a", 255)),
      "term_atom_255_utf8" => String.to_atom(String.duplicate("é", 255)),
      "term_long_0" => 0,
      "term_long_255" => 255,
      "term_long_256" => 256,
      "term_long_m1" => -1,
      "term_long_int32_min" => -2_147_483_648,
      "term_long_int32_max" => 2_147_483_647,
      "term_long_2p31" => 2_147_483_648,
      "term_long_m2p31_m1" => -2_147_483_649,
      "term_long_int64_max" => 9_223_372_036_854_775_807,
      "term_long_int64_min" => -9_223_372_036_854_775_808,
      "term_ulong_max" => 18_446_744_073_709_551_615,
      "term_ulong_2p40" => 1 <<< 40,
      "term_ulong_2p27" => 1 <<< 27,
      "term_bool_true" => true,
      "term_bool_false" => false,
      "term_double" => 1.5,
      "term_double_neg_big" => -1.0e300,
      "term_binary" => "abc",
      "term_binary_empty" => "",
      "term_string_utf8" => "héllo",
      "term_nil" => [],
      "term_pid" => p1(),
      "term_pid_max" => p2(),
      "term_ref" => r1(),
      "term_ref_5" => r2(),
      "term_map" => %{:a => 1, "k" => [1, 2]},
      "term_map_empty" => %{},
      "term_list_improper" => [1 | 2],
      "term_tuple_empty" => {},
      "term_tuple_300" => List.to_tuple(Enum.to_list(1..300)),
      "term_tuple_pid_ref" => {p2(), r1()},
      "term_raw" => {:raw, {:a, 1}}
    }

    ctrls = %{
      "ctrl_send" => {{2, :"", p2()}, msg()},
      "ctrl_reg_send" => {{6, p1(), :"", :echo}, msg()},
      "ctrl_link" => {{1, p1(), p2()}, :none},
      "ctrl_exit" => {{3, p1(), p2(), reason()}, :none},
      "ctrl_exit2" => {{8, p1(), p2(), reason()}, :none},
      "ctrl_monitor_p_pid" => {{19, p1(), p2(), r1()}, :none},
      "ctrl_monitor_p_name" => {{19, p1(), :echo, r1()}, :none},
      "ctrl_demonitor_p_pid" => {{20, p1(), p2(), r1()}, :none},
      "ctrl_demonitor_p_name" => {{20, p1(), :echo, r1()}, :none},
      "ctrl_monitor_p_exit_pid" => {{21, p2(), p1(), r1(), :noproc}, :none},
      "ctrl_monitor_p_exit_name" => {{21, :echo, p1(), r1(), reason()}, :none},
      "ctrl_unlink_id" => {{35, 1, p1(), p2()}, :none},
      "ctrl_unlink_id_2p40" => {{35, 1 <<< 40, p1(), p2()}, :none},
      "ctrl_unlink_id_max" => {{35, 18_446_744_073_709_551_615, p1(), p2()}, :none},
      "ctrl_unlink_id_ack" => {{36, 1 <<< 40, p2(), p1()}, :none},
      "ctrl_alias_send" => {{33, p1(), r1()}, msg()},
      "ctrl_spawn_request" =>
        {{29, r1(), p1(), p2(), {:erlang, :apply, 2}, [:link, {:monitor, []}]}, [42, "hello"]},
      "ctrl_spawn_request_no_opts" => {{29, r2(), p1(), p2(), {:m, :f, 0}, []}, []},
      "ctrl_spawn_reply_ok" => {{31, r1(), p1(), 2, p2()}, :none},
      "ctrl_spawn_reply_error" => {{31, r1(), p1(), 0, :badarg}, :none}
    }

    terms
    |> Map.new(fn {k, v} -> {k, {v, :none}} end)
    |> Map.merge(ctrls)
  end

  @names ~w(term_atom term_atom_utf8 term_atom_empty term_atom_interned term_atom_255
            term_atom_255_utf8 term_long_0 term_long_255 term_long_256 term_long_m1
            term_long_int32_min term_long_int32_max term_long_2p31 term_long_m2p31_m1
            term_long_int64_max term_long_int64_min term_ulong_max term_ulong_2p40 term_double
            term_double_neg_big term_binary term_binary_empty term_string_utf8 term_nil term_pid
            term_pid_max term_ref term_ref_5 term_map term_map_empty term_list_improper
            term_tuple_empty term_tuple_300 term_tuple_pid_ref term_ulong_2p27 term_bool_true
            term_bool_false term_raw
            ctrl_send ctrl_reg_send ctrl_link ctrl_exit ctrl_exit2 ctrl_monitor_p_pid
            ctrl_monitor_p_name ctrl_demonitor_p_pid ctrl_demonitor_p_name ctrl_monitor_p_exit_pid
            ctrl_monitor_p_exit_name ctrl_unlink_id ctrl_unlink_id_2p40 ctrl_unlink_id_max
            ctrl_unlink_id_ack ctrl_alias_send ctrl_spawn_request ctrl_spawn_request_no_opts
            ctrl_spawn_reply_ok ctrl_spawn_reply_error)

  # ---- running the vector program ---------------------------------------------------------------

  defp vectors_bin do
    case System.get_env("HORDEC_VECTORS_BIN") do
      bin when bin not in [nil, ""] -> Path.expand(bin)
      _ -> Path.expand("../build/test/interop/hordec-vectors")
    end
  end

  setup_all do
    bin = vectors_bin()

    unless File.regular?(bin) do
      flunk("""
      #{bin} not found. Build it first (cmake -S . -B build && cmake --build build -j2 at the
      repository root) or point HORDEC_VECTORS_BIN at it.
      """)
    end

    {out, status} = System.cmd(bin, [], stderr_to_stdout: true)
    assert status == 0, "hordec-vectors exited #{status}:\n#{out}"

    vectors =
      for line <- String.split(out, "\n", trim: true), into: %{} do
        [name, hex] = String.split(line, "\t")
        {name, Base.decode16!(hex, case: :mixed)}
      end

    %{vectors: vectors}
  end

  # Splits 'p' 131 Ctrl [131 Msg] with the BEAM's own decoder.
  defp decode_packet(<<?p, rest::binary>>) do
    {ctrl, used} = :erlang.binary_to_term(rest, [:used])
    <<ctrl_bytes::binary-size(used), tail::binary>> = rest

    msg =
      case tail do
        "" ->
          :none

        _ ->
          {m, mused} = :erlang.binary_to_term(tail, [:used])

          assert mused == byte_size(tail),
                 "#{byte_size(tail) - mused} bytes left after the message"

          m
      end

    {ctrl, ctrl_bytes, msg}
  end

  test "every printed vector has an expectation, and every expectation was printed", %{
    vectors: vectors
  } do
    printed = vectors |> Map.keys() |> MapSet.new()
    wanted = MapSet.new(@names)
    assert MapSet.equal?(MapSet.new(Map.keys(expected())), wanted)

    assert MapSet.difference(printed, wanted) |> MapSet.to_list() == [],
           "vectors without expectations"

    assert MapSet.difference(wanted, printed) |> MapSet.to_list() == [],
           "expected vectors not printed"
  end

  for name <- @names do
    test "BEAM decodes #{name}", %{vectors: vectors} do
      name = unquote(name)
      bytes = Map.fetch!(vectors, name)
      {want_ctrl, want_msg} = Map.fetch!(expected(), name)

      assert <<?p, 131, _::binary>> = bytes
      {ctrl, ctrl_bytes, msg} = decode_packet(bytes)
      assert ctrl === want_ctrl
      assert msg === want_msg

      # Our bytes are the BEAM's own canonical encoding (map key order is the BEAM's choice).
      unless is_map(ctrl) do
        assert :erlang.term_to_binary(ctrl, minor_version: 2) == ctrl_bytes
      end
    end
  end

  test "pids and refs keep node, numbers and creation", %{vectors: vectors} do
    {pid, _, :none} = decode_packet(vectors["term_pid_max"])
    assert is_pid(pid)
    assert node(pid) == :vec2@host
    assert node(pid) != node()
    # Re-encoded by the BEAM: NEW_PID_EXT with the exact fields the C struct held.
    assert <<131, 88, 119, 9, "vec2@host", 32767::32, 8191::32, 0xDEADBEEF::32>> =
             :erlang.term_to_binary(pid, minor_version: 2)

    {ref, _, :none} = decode_packet(vectors["term_ref"])
    assert is_reference(ref)
    assert node(ref) == :vec1@host

    assert <<131, 90, 3::16, 119, 9, "vec1@host", 3::32, 0x3FFFF::32, 0xFFFFFFFF::32, 7::32>> =
             :erlang.term_to_binary(ref, minor_version: 2)

    {ctrl, _, _} = decode_packet(vectors["ctrl_monitor_p_exit_pid"])
    assert elem(ctrl, 1) == pid
    assert elem(ctrl, 3) == ref
  end
end
