defmodule HordeC.MalformedInputTest do
  @moduledoc """
  Hostile input is normal input: a peer that sends garbage (before, during or after the
  handshake) gets its connection dropped with a log line, and everybody else keeps being
  served. Uses `HordeC.Test.RawDist`, a hand-written distribution client.
  """
  use HordeC.InteropCase, async: true

  @drop ~r/drop|clos|disconnect|lost|malformed|invalid/i

  setup do
    h = start_hordec()
    traffic = start_echo_traffic(h)
    on_exit(fn -> send(traffic, :stop) end)
    %{h: h, traffic: traffic}
  end

  # Another BEAM node (the runner) echoes through hordec all along; at the end of each
  # test every one of its calls must have succeeded.
  defp start_echo_traffic(h) do
    parent = self()

    spawn(fn ->
      loop = fn loop, i, failures ->
        receive do
          {:report, to} ->
            send(to, {:traffic, i, Enum.reverse(failures)})
            loop.(loop, i, failures)

          :stop ->
            :ok
        after
          5 ->
            failures =
              try do
                if ctl(h, {:echo, {:traffic, i}}, 2_000) == {:traffic, i},
                  do: failures,
                  else: [{i, :bad_reply} | failures]
              catch
                :exit, reason -> [{i, reason} | failures]
              end

            loop.(loop, i + 1, failures)
        end
      end

      send(parent, :traffic_started)
      loop.(loop, 0, [])
    end)
    |> tap(fn _ -> assert_receive :traffic_started end)
  end

  defp assert_traffic_ok(traffic) do
    # The traffic must go on after the incident: wait until it has made 10 more calls.
    {calls, _} = traffic_report(traffic)
    eventually(fn -> elem(traffic_report(traffic), 0) >= calls + 10 end)
    {calls, failures} = traffic_report(traffic)
    assert failures == [], "echo calls failed while a raw client misbehaved: #{inspect(failures)}"
    assert calls > 0
  end

  defp traffic_report(traffic) do
    send(traffic, {:report, self()})
    assert_receive {:traffic, calls, failures}, 5_000
    {calls, failures}
  end

  defp raw_name, do: :"#{unique_name("raw")}@127.0.0.1"

  defp connect_raw(h) do
    name = raw_name()
    assert {:ok, conn} = RawDist.connect(h.node, name, cookie())
    conn
  end

  defp assert_dropped(h, conn, mark) do
    assert_log(h, [~r/#{Regex.escape(Atom.to_string(conn.name))}/, @drop], since: mark)
    assert RawDist.await_close(conn, 5_000) == :closed
  end

  test "the raw client is a real peer: handshake, call, reply", %{h: h, traffic: traffic} do
    conn = connect_raw(h)
    me = RawDist.make_pid(conn)
    tag = make_ref()
    packet = RawDist.pass_through({6, me, :"", :hordec}, {:"$gen_call", {me, tag}, :ping})
    assert :ok = RawDist.send_packet(conn, packet)
    assert {:ok, {control, {^tag, :pong}}} = RawDist.recv_packet(conn)
    assert elem(control, 0) in [2, 22, 33]
    assert conn.name in peers(h)
    RawDist.close(conn)
    assert_traffic_ok(traffic)
  end

  test "garbage bytes after the handshake (framed)", %{h: h, traffic: traffic} do
    conn = connect_raw(h)
    mark = log_mark(h)
    :ok = RawDist.send_packet(conn, <<0xFF, "this is not a distribution message", 0, 1, 2>>)
    assert_dropped(h, conn, mark)
    assert_traffic_ok(traffic)
  end

  test "garbage bytes after the handshake (absurd frame length)", %{h: h, traffic: traffic} do
    conn = connect_raw(h)
    mark = log_mark(h)

    :ok =
      RawDist.send_raw(
        conn,
        <<0xFF, 0xFF, 0xFF, 0xFF, "garbage", :crypto.strong_rand_bytes(64)::binary>>
      )

    assert_dropped(h, conn, mark)
    assert_traffic_ok(traffic)
  end

  test "a truncated frame, then close", %{h: h, traffic: traffic} do
    conn = connect_raw(h)
    mark = log_mark(h)
    :ok = RawDist.send_raw(conn, <<100::32, 112, 131, 104, 4, 97>>)
    RawDist.close(conn)
    assert_log(h, [~r/#{Regex.escape(Atom.to_string(conn.name))}/, @drop], since: mark)
    eventually(fn -> conn.name not in peers(h) end)
    assert_traffic_ok(traffic)
  end

  describe "well-framed pass-through packets with a bad control message" do
    setup %{h: h} do
      conn = connect_raw(h)
      %{conn: conn, me: RawDist.make_pid(conn)}
    end

    test "REG_SEND with the wrong arity", %{h: h, conn: conn, me: me, traffic: traffic} do
      mark = log_mark(h)

      :ok =
        RawDist.send_packet(
          conn,
          RawDist.pass_through({6, me}, {:"$gen_call", {me, make_ref()}, :ping})
        )

      assert_dropped(h, conn, mark)
      assert_traffic_ok(traffic)
    end

    test "REG_SEND with wrong types", %{h: h, conn: conn, traffic: traffic} do
      mark = log_mark(h)
      ctrl = {6, "not a pid", :"", "not an atom"}

      :ok =
        RawDist.send_packet(
          conn,
          RawDist.pass_through(ctrl, {:"$gen_call", {self(), make_ref()}, :ping})
        )

      assert_dropped(h, conn, mark)
      assert_traffic_ok(traffic)
    end

    test "SEND to something that is not a pid", %{h: h, conn: conn, traffic: traffic} do
      mark = log_mark(h)
      :ok = RawDist.send_packet(conn, RawDist.pass_through({2, :"", {:not, :a, :pid}}, :hello))
      assert_dropped(h, conn, mark)
      assert_traffic_ok(traffic)
    end

    test "a control message that is not a tuple", %{h: h, conn: conn, traffic: traffic} do
      mark = log_mark(h)
      :ok = RawDist.send_packet(conn, RawDist.pass_through([:not, :a, :tuple]))
      assert_dropped(h, conn, mark)
      assert_traffic_ok(traffic)
    end

    test "an unknown control operation is not ignored silently", %{
      h: h,
      conn: conn,
      me: me,
      traffic: traffic
    } do
      # erts drops the connection on an unknown operation ("invalid distribution
      # message"); hordec may drop it too or skip the message, but must say so.
      mark = log_mark(h)
      :ok = RawDist.send_packet(conn, RawDist.pass_through({99, me, :x}))

      assert_log(
        h,
        [
          ~r/#{Regex.escape(Atom.to_string(conn.name))}/,
          ~r/drop|ignor|unknown|unsupported|invalid/i
        ],
        since: mark
      )

      assert ctl(h, :ping) == :pong
      assert_traffic_ok(traffic)
    end

    test "a corrupt external term", %{h: h, conn: conn, traffic: traffic} do
      mark = log_mark(h)
      # tuple header claiming 5 elements, then 1 element and a bogus tag
      :ok = RawDist.send_packet(conn, <<112, 131, 104, 5, 97, 6, 255, 255, 255>>)
      assert_dropped(h, conn, mark)
      assert_traffic_ok(traffic)
    end

    test "a message that claims a huge binary", %{h: h, conn: conn, me: me, traffic: traffic} do
      mark = log_mark(h)
      ctrl = :erlang.term_to_binary({6, me, :"", :hordec})
      # BINARY_EXT with a length far beyond the packet
      :ok = RawDist.send_packet(conn, <<112, ctrl::binary, 131, 109, 0x7FFFFFFF::32, "short">>)
      assert_dropped(h, conn, mark)
      assert_traffic_ok(traffic)
    end
  end

  test "garbage before the handshake", %{h: h, traffic: traffic} do
    {:ok, sock} = RawDist.open(h.node)
    # 2-byte length 200 and 200 bytes of junk: a complete (bogus) first message, so the
    # C node has everything it needs to reject it at once.
    junk = <<0xEE, :crypto.strong_rand_bytes(199)::binary>>
    :ok = RawDist.send_raw(sock, [<<200::16>>, junk])
    assert RawDist.await_close(sock, 5_000) == :closed
    assert ctl(h, :ping) == :pong
    assert_traffic_ok(traffic)
  end

  test "an unknown handshake message type", %{h: h, traffic: traffic} do
    {:ok, sock} = RawDist.open(h.node)
    :ok = RawDist.send_hs(sock, <<?Z, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10>>)
    assert RawDist.await_close(sock, 5_000) == :closed
    assert_traffic_ok(traffic)
  end

  test "garbage during the handshake (instead of the challenge reply)", %{h: h, traffic: traffic} do
    {:ok, sock} = RawDist.open(h.node)
    name = Atom.to_string(raw_name())

    :ok =
      RawDist.send_hs(sock, <<?N, 0x407074FBC::64, 1234::32, byte_size(name)::16, name::binary>>)

    assert {:ok, "sok"} = RawDist.recv_hs(sock)
    assert {:ok, <<?N, _::binary>>} = RawDist.recv_hs(sock)
    :ok = RawDist.send_hs(sock, <<?r, "garbage">>)
    assert RawDist.await_close(sock, 5_000) == :closed
    refute String.to_atom(name) in peers(h)
    assert_traffic_ok(traffic)
  end

  test "a handshake whose name is not name@host", %{h: h, traffic: traffic} do
    {:ok, sock} = RawDist.open(h.node)
    name = "no_at_sign_#{System.unique_integer([:positive])}"

    :ok =
      RawDist.send_hs(sock, <<?N, 0x407074FBC::64, 1234::32, byte_size(name)::16, name::binary>>)

    # Refused at once, or at the latest after a *correct* challenge reply: such a name
    # must never become a peer.
    with {:ok, "sok"} <- RawDist.recv_hs(sock, 2_000),
         {:ok, <<?N, _flags::64, challenge::32, _::binary>>} <- RawDist.recv_hs(sock, 2_000) do
      digest = RawDist.digest(Atom.to_string(cookie()), challenge)
      RawDist.send_hs(sock, <<?r, 42::32, digest::binary>>)
    end

    assert RawDist.await_close(sock, 5_000) == :closed
    assert_traffic_ok(traffic)
  end

  test "a name length that overruns the handshake message", %{h: h, traffic: traffic} do
    {:ok, sock} = RawDist.open(h.node)
    :ok = RawDist.send_hs(sock, <<?N, 0x407074FBC::64, 1234::32, 500::16, "short@127.0.0.1">>)
    assert RawDist.await_close(sock, 5_000) == :closed
    assert_traffic_ok(traffic)
  end
end
