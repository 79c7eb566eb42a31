/**
 * Microphone recording for voice input (MediaRecorder, audio/webm). No React, no server calls.
 */

/** A recording problem the user can act on; `message` is shown as is. */
export class VoiceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VoiceError';
  }
}

const PREFERRED_TYPES = ['audio/webm;codecs=opus', 'audio/webm'];

export class VoiceRecorder {
  get isRecording(): boolean {
    return this._recorder !== null;
  }

  /** Ask for the microphone and start recording. */
  async start(): Promise<void> {
    if (this._recorder) {
      return;
    }
    if (typeof navigator === 'undefined' || !navigator.mediaDevices?.getUserMedia) {
      throw new VoiceError('Voice input needs a secure page (https or localhost) and a browser with microphone access.');
    }
    if (typeof MediaRecorder === 'undefined') {
      throw new VoiceError('This browser cannot record audio. Type your message instead.');
    }
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      throw new VoiceError(describeMediaError(error));
    }
    const mimeType = PREFERRED_TYPES.find(t => MediaRecorder.isTypeSupported(t));
    const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
    this._chunks = [];
    recorder.ondataavailable = e => {
      if (e.data.size > 0) {
        this._chunks.push(e.data);
      }
    };
    this._stream = stream;
    this._recorder = recorder;
    recorder.start();
  }

  /** Stop recording and return the audio. */
  stop(): Promise<Blob> {
    const recorder = this._recorder;
    if (!recorder) {
      return Promise.reject(new VoiceError('Nothing is being recorded.'));
    }
    return new Promise<Blob>(resolve => {
      recorder.onstop = () => {
        const blob = new Blob(this._chunks, { type: recorder.mimeType || 'audio/webm' });
        this._release();
        resolve(blob);
      };
      recorder.stop();
    });
  }

  /** Stop and throw the recording away. */
  cancel(): void {
    if (this._recorder && this._recorder.state !== 'inactive') {
      this._recorder.onstop = null;
      this._recorder.stop();
    }
    this._release();
  }

  private _release(): void {
    this._stream?.getTracks().forEach(track => track.stop());
    this._stream = null;
    this._recorder = null;
    this._chunks = [];
  }

  private _recorder: MediaRecorder | null = null;
  private _stream: MediaStream | null = null;
  private _chunks: Blob[] = [];
}

function describeMediaError(error: unknown): string {
  const name = (error as { name?: string } | null)?.name;
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Microphone access was refused. Allow the microphone for this page in the browser settings, then try again.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No microphone was found. Connect one, or type your message instead.';
    case 'NotReadableError':
      return 'The microphone is in use by another application or could not be started.';
    default:
      return `The microphone could not be started: ${String(error)}`;
  }
}
