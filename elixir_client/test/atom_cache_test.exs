defmodule HordeC.AtomCacheTest do
  @moduledoc """
  DFLAG_DIST_HDR_ATOM_CACHE from a hand-written client: once negotiated, packets in both
  directions carry the distribution header (131, 68, refs...) and atom cache references;
  entries persist across packets; a hostile header drops only that connection. (Real BEAM
  peers negotiate the flag in every other interop test.)
  """
  use HordeC.InteropCase, async: true

  import Bitwise

  @cache_flag 0x2000
  @flags 0x407074F9C ||| 0x20 ||| @cache_flag
  @drop ~r/drop|clos|malformed/i

  setup do
    %{h: start_hordec()}
  end

  defp connect_cache(h, flags \\ @flags) do
    name = :"#{unique_name("acraw")}@127.0.0.1"
    assert {:ok, sock} = RawDist.open(h.node)
    assert {:ok, conn} = RawDist.handshake(sock, name: name, cookie: cookie(), flags: flags)
    conn
  end

  # ---- the header, written and read by hand ---------------------------------------------

  # refs: [{slot, text, new?}] in reference order.
  defp header(refs) do
    n = length(refs)

    if n == 0 do
      <<131, 68, 0>>
    else
      long = Enum.any?(refs, fn {_, t, new} -> new and byte_size(t) > 255 end)

      nibbles =
        Enum.map(refs, fn {slot, _, new} -> if(new, do: 8, else: 0) ||| slot >>> 8 end) ++
          [if(long, do: 1, else: 0)]

      nibbles = if rem(length(nibbles), 2) == 1, do: nibbles ++ [0], else: nibbles

      flags = for [lo, hi] <- Enum.chunk_every(nibbles, 2), into: <<>>, do: <<hi::4, lo::4>>

      entries =
        for {slot, text, new} <- refs, into: <<>> do
          cond do
            not new -> <<slot &&& 0xFF>>
            long -> <<slot &&& 0xFF, byte_size(text)::16, text::binary>>
            true -> <<slot &&& 0xFF, byte_size(text), text::binary>>
          end
        end

      <<131, 68, n, flags::binary, entries::binary>>
    end
  end

  # Parses a header hordec sent; returns {atoms_tuple, new_count, rest, cache}.
  defp parse_header(<<131, 68, n, rest::binary>>, cache) do
    if n == 0 do
      {{}, 0, rest, cache}
    else
      fb = div(n, 2) + 1
      <<flags::binary-size(fb), rest::binary>> = rest
      nib = fn k -> :binary.at(flags, div(k, 2)) >>> (rem(k, 2) * 4) &&& 0xF end
      long = (nib.(n) &&& 1) == 1

      {atoms, news, rest, cache} =
        Enum.reduce(0..(n - 1), {[], 0, rest, cache}, fn k, {acc, news, rest, cache} ->
          f = nib.(k)
          <<ix, rest::binary>> = rest
          slot = (f &&& 7) <<< 8 ||| ix

          if (f &&& 8) == 8 do
            {len, rest} =
              if long,
                do:
                  (
                    <<l::16, r::binary>> = rest
                    {l, r}
                  ),
                else:
                  (
                    <<l, r::binary>> = rest
                    {l, r}
                  )

            <<text::binary-size(len), rest::binary>> = rest
            atom = String.to_atom(text)
            {[atom | acc], news + 1, rest, Map.put(cache, slot, atom)}
          else
            {[Map.fetch!(cache, slot) | acc], news, rest, cache}
          end
        end)

      {List.to_tuple(Enum.reverse(atoms)), news, rest, cache}
    end
  end

  # Rewrites one term with ATOM_CACHE_REF into plain external format: {iodata, rest}.
  defp expand(<<82, ix, rest::binary>>, atoms), do: {atom_ext(elem(atoms, ix)), rest}
  defp expand(<<97, v, rest::binary>>, _), do: {<<97, v>>, rest}
  defp expand(<<98, v::binary-4, rest::binary>>, _), do: {<<98, v::binary>>, rest}
  defp expand(<<70, v::binary-8, rest::binary>>, _), do: {<<70, v::binary>>, rest}
  defp expand(<<106, rest::binary>>, _), do: {<<106>>, rest}

  defp expand(<<119, n, t::binary-size(n), rest::binary>>, _), do: {<<119, n, t::binary>>, rest}

  defp expand(<<118, n::16, t::binary-size(n), rest::binary>>, _),
    do: {<<118, n::16, t::binary>>, rest}

  defp expand(<<109, n::32, b::binary-size(n), rest::binary>>, _),
    do: {<<109, n::32, b::binary>>, rest}

  defp expand(<<104, n, rest::binary>>, atoms), do: many(<<104, n>>, n, rest, atoms)
  defp expand(<<116, n::32, rest::binary>>, atoms), do: many(<<116, n::32>>, 2 * n, rest, atoms)
  defp expand(<<108, n::32, rest::binary>>, atoms), do: many(<<108, n::32>>, n + 1, rest, atoms)

  defp expand(<<88, rest::binary>>, atoms) do
    {node, <<tail::binary-12, rest::binary>>} = expand(rest, atoms)
    {[88, node, tail], rest}
  end

  defp expand(<<90, len::16, rest::binary>>, atoms) do
    {node, rest} = expand(rest, atoms)
    size = 4 + 4 * len
    <<tail::binary-size(size), rest::binary>> = rest
    {[<<90, len::16>>, node, tail], rest}
  end

  defp many(head, n, rest, atoms) do
    Enum.reduce(1..n//1, {[head], rest}, fn _, {acc, rest} ->
      {t, rest} = expand(rest, atoms)
      {[acc, t], rest}
    end)
  end

  defp atom_ext(a) do
    t = Atom.to_string(a)

    if byte_size(t) < 256,
      do: <<119, byte_size(t), t::binary>>,
      else: <<118, byte_size(t)::16, t::binary>>
  end

  # Receives hordec's next packet, which must be in header form; returns {control, message, news, cache}.
  defp recv_cached(conn, cache) do
    assert {:ok, {:raw, <<131, 68, _::binary>> = data}} = RawDist.recv_packet(conn)
    {atoms, news, rest, cache} = parse_header(data, cache)
    {ctrl, rest} = expand(rest, atoms)
    {msg, ""} = expand(rest, atoms)
    control = :erlang.binary_to_term(IO.iodata_to_binary([131, ctrl]))
    message = :erlang.binary_to_term(IO.iodata_to_binary([131, msg]))
    {control, message, news, cache}
  end

  # A REG_SEND {6, Me, '', hordec} + {'$gen_call', {Me, Tag}, Req} with every atom as a cache
  # reference. Atoms in `known` (slot => atom) are referenced, the others announced.
  defp call_packet(conn, me, tag, req, known) do
    node_text = Atom.to_string(conn.name)
    slots = [{0x101, ""}, {0x202, "hordec"}, {0x303, node_text}, {0x404, "$gen_call"}]

    refs =
      for {slot, text} <- slots,
          do: {slot, text, Map.get(known, slot) != text}

    me_ext = :erlang.term_to_binary(me)
    pid_ext = <<88, 82, 2, binary_part(me_ext, byte_size(me_ext) - 12, 12)::binary>>
    ctrl = <<104, 4, 97, 6, pid_ext::binary, 82, 0, 82, 1>>
    msg = <<104, 3, 82, 3, 104, 2, pid_ext::binary, ext(tag)::binary, ext(req)::binary>>
    known = Map.new(slots)
    {header(refs) <> ctrl <> msg, known}
  end

  test "calls in header form, with entries reused across packets", %{h: h} do
    conn = connect_cache(h)
    assert (conn.peer_flags &&& @cache_flag) != 0
    me = RawDist.make_pid(conn)

    {pkt, known} = call_packet(conn, me, 1001, {:echo, :first}, %{})
    :ok = RawDist.send_packet(conn, pkt)
    {control, {1001, :first}, news1, cache} = recv_cached(conn, %{})
    assert elem(control, 0) in [2, 22, 33]
    assert news1 > 0

    # the same atoms again: our header only names slots, and so does hordec's
    {pkt2, _} = call_packet(conn, me, 1002, {:echo, :first}, known)
    assert byte_size(pkt2) < byte_size(pkt)
    :ok = RawDist.send_packet(conn, pkt2)
    {_control, {1002, :first}, news2, _cache} = recv_cached(conn, cache)
    assert news2 == 0

    # a packet without references at all (131, 68, 0) is fine too
    plain = <<131, 68, 0>> <> ext({6, me, :"", :hordec}) <> ext({:"$gen_call", {me, 1003}, :ping})
    :ok = RawDist.send_packet(conn, plain)
    {_control, {1003, :pong}, _, _} = recv_cached(conn, cache)

    assert conn.name in peers(h)
    RawDist.close(conn)
  end

  # A term in external format without its 131, atoms as SMALL_ATOM_UTF8.
  defp ext(term) do
    <<131, rest::binary>> = :erlang.term_to_binary(term, minor_version: 2)
    rest
  end

  test "a client without the flag still gets 'p' framing", %{h: h} do
    conn = connect_cache(h, @flags &&& ~~~@cache_flag)
    me = RawDist.make_pid(conn)
    packet = RawDist.pass_through({6, me, :"", :hordec}, {:"$gen_call", {me, :t}, :ping})
    :ok = RawDist.send_packet(conn, packet)
    assert {:ok, {_control, {:t, :pong}}} = RawDist.recv_packet(conn)
    RawDist.close(conn)
  end

  for {name, bytes, why} <- [
        {"a reference to an empty slot", <<131, 68, 1, 0x07, 0xFF, 104, 1, 82, 0>>, "empty slot"},
        {"a fragment", <<131, 69, 0::64, 1::64, 0, 104, 1, 97, 1>>, "fragments"},
        {"a truncated header", <<131, 68, 3, 0x88>>, "truncated"},
        {"a reference index beyond the header",
         <<131, 68, 1, 0x08, 1, 1, ?a, 104, 2, 82, 0, 82, 7>>, "malformed"}
      ] do
    test "hostile header: #{name}", %{h: h} do
      conn = connect_cache(h)
      mark = log_mark(h)
      :ok = RawDist.send_packet(conn, unquote(bytes))

      assert_log(h, [~r/#{Regex.escape(Atom.to_string(conn.name))}/, @drop, ~r/#{unquote(why)}/],
        since: mark
      )

      assert RawDist.await_close(conn, 5_000) == :closed
      # hordec still serves everyone else
      assert ctl(h, {:echo, :still_here}) == :still_here
    end
  end
end
