//! The protobuf codec of every generated service and client (`build.rs` names it): tonic's
//! prost codec, except that a request that does not decode is INVALID_ARGUMENT (the client sent
//! bytes that are not the message), not INTERNAL (which says the server is at fault).

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, ProstCodec};

#[derive(Debug, Clone)]
pub struct StrictProstCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for StrictProstCodec<T, U> {
    fn default() -> Self {
        StrictProstCodec {
            inner: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for StrictProstCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder { _pd: PhantomData }
    }
}

#[derive(Debug)]
pub struct StrictDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: prost::Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            Status::invalid_argument(format!(
                "the request is not a valid {} message: {e}",
                std::any::type_name::<U>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("protobuf")
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
